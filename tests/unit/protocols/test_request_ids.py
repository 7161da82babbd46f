import uuid

from lamina.protocols.request_ids import request_id


def test_request_ids_are_version_4_uuids_in_their_text_form() -> None:
    ids = [request_id() for _ in range(2000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
