"""Who may do what: bearer tokens from the settings, each with the scope `read` or `write`.

The scope a request needs follows its method: GET and HEAD read, every other method writes. A
write token reads too. Reads are open without a token when the operator opts in
(AIXAUDIT_API_OPEN_READS) or when no token is configured at all (then `aixaudit api` listens on
loopback only); writes always take a write token. Tokens travel in a header, never in a cookie,
so a form posted from another site cannot carry one.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aixaudit.config import ApiScope, Settings
from api.deps import SettingsDep

READ_METHODS = frozenset({"GET", "HEAD"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A token from AIXAUDIT_API_TOKENS: `read` scope for GET, `write` for POST.",
)


def granted_scopes(settings: Settings, token: str) -> set[ApiScope]:
    """The scopes of every configured token equal to `token`, each compared in constant time
    (and all of them compared, so the time does not tell which one matched)."""
    presented = token.encode()
    scopes: set[ApiScope] = set()
    for scope, secret in settings.api_tokens:
        if hmac.compare_digest(secret.get_secret_value().encode(), presented):
            scopes.add(scope)
    return scopes | {"read"} if "write" in scopes else scopes


def _refuse(code: int, error: str, detail: str) -> HTTPException:
    challenge = 'Bearer realm="aixaudit"' + (f', error="{error}"' if error else "")
    return HTTPException(code, detail=detail, headers={"WWW-Authenticate": challenge})


def authorize(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 without a valid token where one is needed, 403 when its scope does not reach."""
    needed: ApiScope = "read" if request.method in READ_METHODS else "write"
    if credentials is None:
        if needed == "read" and (settings.api_open_reads or not settings.api_tokens):
            return
        raise _refuse(
            status.HTTP_401_UNAUTHORIZED,
            "",
            f"This needs a token with the {needed} scope (from AIXAUDIT_API_TOKENS), sent as "
            "`Authorization: Bearer TOKEN`.",
        )
    scopes = granted_scopes(settings, credentials.credentials)
    if not scopes:
        raise _refuse(status.HTTP_401_UNAUTHORIZED, "invalid_token", "The token is not valid.")
    if needed not in scopes:
        raise _refuse(
            status.HTTP_403_FORBIDDEN,
            "insufficient_scope",
            f"The token has the {', '.join(sorted(scopes))} scope; this needs {needed}.",
        )


Authorized = Depends(authorize)
