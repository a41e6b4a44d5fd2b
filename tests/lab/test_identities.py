"""pynats_lab.auth: operators, accounts and users read alike (claims, public key, issuer), and showing one
never shows its seed."""
from __future__ import annotations

from pynats_lab.auth import Operator


def test_operator_account_and_user_read_alike():
    op = Operator.new("lab")
    app = op.new_account("APP")
    alice = app.new_user("alice")
    for entity, kind, signer in ((op, "operator", op), (app, "account", op), (alice, "user", app)):
        claims = entity.claims
        assert claims["name"] == entity.name and claims["nats"]["type"] == kind
        assert claims["sub"] == entity.public_key and entity.issuer == claims["iss"] == signer.public_key
        shown = repr(entity)
        assert entity.seed not in shown and entity.jwt not in shown, "a displayed identity leaks no secret"
        assert shown.startswith(f"<{kind} {entity.name} {entity.public_key[:12]}")
