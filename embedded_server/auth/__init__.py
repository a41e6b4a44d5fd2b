"""Authentication and authorization: users, tokens, nkeys, bcrypt, permissions (accounts and JWT to come).

`conf` turns the config's `authorization` block into an AuthConfig, `authenticator` checks a CONNECT against
it, and `permissions` is what a connection consults on every PUB, SUB and delivery.
"""
from embedded_server.auth.authenticator import ANONYMOUS, Authenticator, Identity, generate_nonce
from embedded_server.auth.conf import AuthConfig
from embedded_server.auth.permissions import ClientPermissions, Permissions, ResponsePermission, SubjectPermission
from embedded_server.auth.users import NkeyUser, User

__all__ = ["ANONYMOUS", "AuthConfig", "Authenticator", "ClientPermissions", "Identity", "NkeyUser", "Permissions",
           "ResponsePermission", "SubjectPermission", "User", "generate_nonce"]
