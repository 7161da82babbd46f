"""AWS wire protocols, driven by botocore's service models; SigV4 verification.

    router.AwsRouter        the ASGI endpoint: SigV4 -> service binding -> protocol -> handler
    sigv4.SigV4Verifier     checks Authorization headers and presigned URLs
    rest_json.RestJsonProtocol, json_protocol.JsonProtocol, query.QueryProtocol
                            one botocore model each: parse_request / serialize_response /
                            serialize_error on plain `wire.HttpRequest` / `HttpResponse`
    rest_routes             (method, path, query) -> operation for the REST protocols
    json_shapes, values     shape-compiled JSON converters; scalar spellings on the wire
    testing                 botocore as the client side, for tests of protocols and services
    context                 what a service handler sees (RequestContext, ServiceHandler)

Nothing is imported here, so `from lamina.protocols.context import ...` stays cheap.
"""
