from silnode.errors import InvalidGGUF, ModelNotFound, SilnodeError, _by_code


def test_envelope_round_trip():
    for code, cls in _by_code().items():
        err = cls("boom", hint="do x")
        body = err.to_json()
        assert body["ok"] is False and body["code"] == code and body["status"] == cls.status
        back = SilnodeError.from_json(body)
        assert type(back) is cls and back.message == "boom" and back.hint == "do x"


def test_unknown_code_keeps_status():
    back = SilnodeError.from_json({"ok": False, "error": "x", "code": "teapot", "status": 418})
    assert back.status == 418 and back.code == "teapot" and str(back) == "x"


def test_defaults():
    assert ModelNotFound("x").status == 404 and ModelNotFound("x").hint
    assert InvalidGGUF("bad").status == 400
