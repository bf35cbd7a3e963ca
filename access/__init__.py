"""Principals and their rights (CONTRACT §10), shared by the broker's files, the HTTP API and the console.

Typical use::

    summary = make_credentials(registry_dir, out_dir, rotate=["W1"], topic_prefix="t1/")  # CLI
    passwords = PasswordFile(out_dir / "passwd")       # follows rotations without a restart
    access = Access(registry)                          # a new one after each registry reload
    user = authenticate(request.headers.get("Authorization"), passwords)  # None: 401
    seen = access.for_user(user)                       # seen.forbidden: 403
    events = [e for e in events if seen.allows(e)]     # or filter on seen.grids / seen.station
"""

from access._acl import acl_rules, acl_text, check_topic_prefix, service_rules
from access._basic import MAX_HEADER, Credentials, authenticate, parse_basic
from access._credentials import (
    ACL,
    PASSWD,
    SECRETS,
    SECRETS_HEADER,
    CredentialsSummary,
    make_credentials,
    read_password_file,
    write_credentials,
)
from access._hashing import ITERATIONS, hash_password, is_password_hash, new_password, verify_password
from access._mint import PasswordMint
from access._password_file import PasswordFile
from access._principals import (
    CONSOLE_ACCOUNT,
    INGEST_ACCOUNT,
    SERVICE_ACCOUNTS,
    SIMULATOR_ACCOUNT,
    Principal,
    Principals,
    Role,
)
from access._service_accounts import write_service_accounts
from access._visibility import Access, Visibility

__all__ = [
    "ACL",
    "CONSOLE_ACCOUNT",
    "INGEST_ACCOUNT",
    "ITERATIONS",
    "MAX_HEADER",
    "PASSWD",
    "SECRETS",
    "SECRETS_HEADER",
    "SERVICE_ACCOUNTS",
    "SIMULATOR_ACCOUNT",
    "Access",
    "Credentials",
    "CredentialsSummary",
    "PasswordFile",
    "PasswordMint",
    "Principal",
    "Principals",
    "Role",
    "Visibility",
    "acl_rules",
    "acl_text",
    "authenticate",
    "check_topic_prefix",
    "hash_password",
    "is_password_hash",
    "make_credentials",
    "new_password",
    "parse_basic",
    "read_password_file",
    "service_rules",
    "verify_password",
    "write_credentials",
    "write_service_accounts",
]
