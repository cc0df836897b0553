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


def test_every_code_names_one_class():
    """The client rebuilds errors by code: two classes with one code would come back as the wrong one."""
    import silnode.client  # noqa: F401  (imports every module that defines errors)
    from silnode.errors import _all_subclasses

    classes = set([SilnodeError, *_all_subclasses(SilnodeError)])  # multiple inheritance lists some twice
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
