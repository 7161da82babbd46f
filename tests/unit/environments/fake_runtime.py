"""A tiny custom runtime speaking the Runtime API, run as a real subprocess.

Stdlib only. Each event is a JSON object whose "action" says what to do, so one
script covers every path an Environment has to handle.
"""

import http.client
import json
import os
import sys
import time

BASE = "/2018-06-01/runtime"


def post(
    conn: http.client.HTTPConnection,
    path: str,
    body: str | bytes,
    headers: dict[str, str] | None = None,
) -> int:
    conn.request("POST", BASE + path, body=body, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def main() -> None:
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    print("init: runtime starting", flush=True)
    time.sleep(float(os.environ.get("FAKE_INIT_SLEEP", "0")))
    if os.environ.get("FAKE_INIT_ERROR"):
        error = {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module 'app'"}
        post(conn, "/init/error", json.dumps(error), {"Lambda-Runtime-Function-Error-Type": "x"})
        sys.exit(1)
    count = 0
    while True:
        conn.request("GET", BASE + "/invocation/next")
        resp = conn.getresponse()
        event = json.loads(resp.read() or b"{}")
        rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
        count += 1
        action = event.get("action", "echo")
        for line in event.get("print", []):
            print(line, flush=True)
        if action == "sleep":
            time.sleep(600)
        elif action == "exit":
            sys.exit(event.get("code", 3))
        elif action == "error":
            body = json.dumps({"errorMessage": "boom", "errorType": "ValueError"})
            post(
                conn,
                f"/invocation/{rid}/error",
                body,
                {"Lambda-Runtime-Function-Error-Type": "Unhandled"},
            )
        elif action == "raw-error":
            post(
                conn,
                f"/invocation/{rid}/error",
                "not json",
                {"Lambda-Runtime-Function-Error-Type": "Custom.Oops"},
            )
        elif action == "huge":
            post(conn, f"/invocation/{rid}/response", b"x" * (6 * 1024 * 1024 + 1))
        elif action == "wrong-id":
            status = post(conn, f"/invocation/not-{rid}/response", "{}")
            post(conn, f"/invocation/{rid}/response", json.dumps({"wrong_id_status": status}))
        else:
            headers = {
                k.lower(): v for k, v in resp.getheaders() if k.lower().startswith("lambda-")
            }
            answer = {"count": count, "pid": os.getpid(), "event": event, "headers": headers}
            post(conn, f"/invocation/{rid}/response", json.dumps(answer))


main()
