from __future__ import annotations

from lamina.gateway.sse import Event, EventDecoder, anthropic_event, openai_event


def test_events_split_anywhere() -> None:
    raw = (b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n: comment\n\n"
           b"data: line1\ndata: line2\n\ndata: [DONE]\n\n")
    for size in (1, 3, 7, len(raw)):
        decoder = EventDecoder()
        events = []
        for i in range(0, len(raw), size):
            events += decoder.feed(raw[i:i + size])
        assert events == [Event("message_start", '{"a":1}'), Event("message", "line1\nline2"),
                          Event("message", "[DONE]")]


def test_flush_emits_an_unterminated_last_event() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: x") == []
    assert decoder.flush() == [Event("message", "x")]


def test_encoders() -> None:
    assert openai_event({"a": 1}) == b'data: {"a":1}\n\n'
    assert anthropic_event({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
