"""OpenID Connect sign-in (``identity_backend = "oidc"``).

The authorization-code flow with PKCE (S256), through authlib's OAuth 2 client
(``authlib.integrations.requests_client.OAuth2Session``); ID tokens are checked with joserfc
(authlib's JOSE library):

1. ``POST /sign-in/oidc`` (:func:`begin_sign_in`): a random ``state``, ``nonce`` and PKCE
   verifier; the verifier and nonce are kept in ``oidc_logins`` (by the SHA-256 of the state),
   the browser's own cookie gets the state so the answer must come back to the browser that
   asked, and the browser goes to the provider's ``authorization_endpoint`` (from discovery,
   ``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must be ours exactly).
2. ``GET /sign-in/oidc/callback`` (:func:`finish_sign_in`): the login row is used once; the
   code is traded at the ``token_endpoint`` (client secret by HTTP Basic, PKCE verifier); the
   ID token's signature is checked against the provider's JWKS (an unknown ``kid`` fetches the
   JWKS again, once: the provider rotated its keys), then ``iss``, ``aud`` (and ``azp``),
   ``exp``, ``iat`` and the ``nonce``. The userinfo endpoint's claims (same ``sub``) are added.
3. The account is the one linked to (issuer, subject) in ``identity_links``, never found by
   user name: a renamed user keeps their account, and a provider's user can never take over a
   local account that has the same name. A first sign-in creates the account, named by the
   username claim (refused if that name is taken). Display name, e-mail, groups, instruments,
   administrator (``oidc_admin_group``) and a claimed uid/gid are updated at every sign-in.
4. Sign-out ends the portal's server-side session, then sends the browser to the provider's
   ``end_session_endpoint`` with ``id_token_hint`` and ``post_logout_redirect_uri``
   (:meth:`OidcIdentityBackend.logout_redirect`), which ends the provider's session too.

The client secret and the PKCE verifier never reach a browser, a URL or a log; log lines name
the issuer, the subject and the user name only.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from daaas.portal.auth.backends import (
    Identity,
    IdentityBackend,
    LocalIdentityBackend,
)
from daaas.portal.auth.models import IdentityLink, OidcLogin, User
from daaas.portal.auth.service import USERNAME_RE, create_user
from daaas.portal.config import ConfigError, Settings
from daaas.portal.db import utcnow
from daaas.portal.errors import PortalError, SignInFailed

log = logging.getLogger(__name__)

#: A sign-in begun at the provider must come back within this long.
LOGIN_TTL = timedelta(minutes=10)
#: The discovery document is read again after this long (seconds).
METADATA_TTL = 3600.0
#: Clock skew allowed on ``exp`` and ``iat`` (seconds).
LEEWAY = 60
#: Signature algorithms accepted on ID tokens (asymmetric only: never ``none`` or HMAC).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
UNAVAILABLE = ("Sign-in is unavailable right now because the identity provider cannot be "
               "reached. Try again in a few minutes.")
NOT_VERIFIED = ("Your sign-in could not be verified, so it was refused. Try again; if it "
                "keeps failing, tell the facility's support.")
EXPIRED_LOGIN = ("This sign-in took too long or was already used. Start again with the "
                 "sign-in button.")


class OidcUnavailable(PortalError):
    """The OpenID provider cannot be reached or answers something unusable."""

    status_code = 503
    code = "identity_unavailable"


class IdTokenRefused(SignInFailed):
    """An ID token (or the answer carrying it) that fails a check; the log says which."""


@dataclass(frozen=True)
class ClaimNames:
    """Which claims carry the account's fields (the ``oidc_*_claim`` settings); an empty name
    maps nothing."""

    username: str = "preferred_username"
    display_name: str = "name"
    email: str = "email"
    groups: str = "groups"
    instruments: str = ""
    uid: str = ""
    gid: str = ""


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider says signed in, after every check, with the mapped claims."""

    issuer: str
    subject: str
    username: str
    display_name: str
    email: str
    groups: tuple[str, ...]
    instruments: tuple[str, ...]
    uid: int | None
    gid: int | None
    is_admin: bool
    id_token: str


@dataclass(frozen=True)
class PendingLogin:
    """A sign-in sent to the provider: the URL to send the browser to and its ``state``."""

    url: str
    state: str


class OidcIdentityBackend(IdentityBackend):
    """Sign-in at an OpenID provider; the password form checks local accounts only (when
    ``oidc_local_sign_in`` is on), for break-glass administrators."""

    name = "oidc"

    def __init__(self, issuer: str, client_id: str, client_secret: str, *,
                 scopes: str = "openid", provider_name: str = "your institution",
                 claims: ClaimNames | None = None, admin_group: str = "",
                 local_sign_in: bool = True, timeout: float = 10.0) -> None:
        """Raises ConfigError when the issuer or client id is missing or the issuer is not an
        http(s) URL."""
        parts = urlsplit(issuer)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ConfigError("Configuration key 'oidc_issuer' must be the provider's http(s) "
                              "issuer URL when identity_backend is 'oidc'.")
        if not client_id:
            raise ConfigError("Configuration key 'oidc_client_id' must be set when "
                              "identity_backend is 'oidc'.")
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        names = scopes.split()
        self.scopes = " ".join(["openid", *[s for s in names if s != "openid"]])
        self.provider_name = provider_name
        self.claims = claims or ClaimNames()
        self.admin_group = admin_group
        self.timeout = timeout
        self.external_sign_in = f"Sign in with {provider_name}"
        self.password_sign_in = local_sign_in
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    def __repr__(self) -> str:  # never the secret
        return f"OidcIdentityBackend(issuer={self.issuer!r}, client_id={self.client_id!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcIdentityBackend:
        """Return a backend for ``oidc_issuer`` and the client of the settings; raises
        ConfigError for a missing issuer or client id."""
        names = ClaimNames(settings.oidc_username_claim, settings.oidc_display_name_claim,
                           settings.oidc_email_claim, settings.oidc_groups_claim,
                           settings.oidc_instruments_claim, settings.oidc_uid_claim,
                           settings.oidc_gid_claim)
        return cls(settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret,
                   scopes=settings.oidc_scopes, provider_name=settings.oidc_provider_name,
                   claims=names, admin_group=settings.oidc_admin_group,
                   local_sign_in=settings.oidc_local_sign_in,
                   timeout=settings.oidc_timeout_seconds)

    # --- the seam's password sign-in: local accounts only --------------------------------

    @property
    def password_source(self) -> str:
        """Accounts signed in with a password here are local ones."""
        return LocalIdentityBackend.name

    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        """Return the identity of a *local* account (break-glass administrators).

        Raises SignInFailed for wrong credentials, or always when the local form is off.
        """
        if not self.password_sign_in:
            raise SignInFailed(f"Use the button: {self.external_sign_in}.",
                               f"local sign-in is off (oidc_local_sign_in); tried {username!r}")
        return LocalIdentityBackend().authenticate(db, username, password)

    def form_targets(self) -> tuple[str, ...]:
        """The provider's origin: the sign-in and sign-out forms redirect there."""
        return (self.issuer,)

    def blueprint(self) -> Any:
        """The sign-in routes of the provider (``/sign-in/oidc``, its callback)."""
        from daaas.portal.auth.oidc_views import blueprint

        return blueprint

    # --- the provider's documents ---------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Return the provider's discovery document (cached for :data:`METADATA_TTL`).

        Raises OidcUnavailable when it cannot be read, names another issuer, or lacks an
        endpoint the flow needs.
        """
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL:
                return self._metadata
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._get_json(url, "discovery document")
        if document.get("issuer") != self.issuer:
            raise OidcUnavailable(UNAVAILABLE, f"oidc: {url} names the issuer "
                                  f"{document.get('issuer')!r}, not {self.issuer!r}")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str):
                raise OidcUnavailable(UNAVAILABLE, f"oidc: {url} has no {key}")
        with self._lock:
            self._metadata, self._metadata_at = document, time.monotonic()
        return document

    def key_set(self, refresh: bool = False) -> KeySet:
        """Return the provider's public keys (cached; ``refresh`` reads them again).

        Raises OidcUnavailable when the JWKS cannot be read or holds no usable key.
        """
        with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
        document = self._get_json(str(self.metadata()["jwks_uri"]), "JWKS")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, KeyError, TypeError, ValueError) as error:
            raise OidcUnavailable(UNAVAILABLE, f"oidc: unusable JWKS: {error}") from None
        with self._lock:
            self._keys = keys
        return keys

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = requests.get(url, timeout=self.timeout,
                                  headers={"Accept": "application/json"})
            answer.raise_for_status()
            document = answer.json()
        except (requests.RequestException, ValueError) as error:
            raise OidcUnavailable(UNAVAILABLE, f"oidc: cannot read the {what} at {url}: "
                                  f"{type(error).__name__}") from None
        if not isinstance(document, dict):
            raise OidcUnavailable(UNAVAILABLE, f"oidc: the {what} at {url} is not an object")
        return document

    # --- the flow -------------------------------------------------------------------------

    def _session(self, redirect_uri: str) -> OAuth2Session:
        supported = self.metadata().get("token_endpoint_auth_methods_supported") or ()
        method = "client_secret_basic"
        if not self._client_secret:
            method = "none"  # a public client: PKCE alone
        elif "client_secret_basic" not in supported and "client_secret_post" in supported:
            method = "client_secret_post"
        return OAuth2Session(self.client_id, self._client_secret, scope=self.scopes,
                             redirect_uri=redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method=method, default_timeout=self.timeout)

    def authorization_url(self, redirect_uri: str, state: str, nonce: str,
                          code_verifier: str) -> str:
        """Return the URL that sends the browser to the provider's sign-in (with the PKCE
        S256 challenge of ``code_verifier``, never the verifier). Raises OidcUnavailable."""
        with self._session(redirect_uri) as oauth:
            url, _state = oauth.create_authorization_url(
                self.metadata()["authorization_endpoint"], state=state, nonce=nonce,
                code_verifier=code_verifier)
        return str(url)

    def exchange(self, code: str, redirect_uri: str, code_verifier: str,
                 nonce: str) -> OidcIdentity:
        """Trade the authorization ``code`` for tokens and return the checked identity.

        Raises IdTokenRefused when the token endpoint refuses the code or the ID token fails a
        check (signature, issuer, audience, expiry, nonce), SignInFailed when a mapped claim
        is unusable, and OidcUnavailable when the provider cannot be reached.
        """
        metadata = self.metadata()
        with self._session(redirect_uri) as oauth:
            try:
                token = oauth.fetch_token(metadata["token_endpoint"], code=code,
                                          code_verifier=code_verifier,
                                          grant_type="authorization_code")
            except AuthlibBaseError as error:
                raise IdTokenRefused(NOT_VERIFIED, "oidc: the token endpoint refused the "
                                     f"code: {error.error}") from None
            except ValueError:
                raise OidcUnavailable(UNAVAILABLE, "oidc: the token endpoint's answer is "
                                      "not JSON") from None
            except requests.RequestException as error:
                raise OidcUnavailable(UNAVAILABLE, "oidc: token endpoint unreachable: "
                                      f"{type(error).__name__}") from None
            raw = token.get("id_token")
            if not isinstance(raw, str) or not raw:
                raise IdTokenRefused(NOT_VERIFIED, "oidc: the token answer has no id_token")
            claims = self.validate_id_token(raw, nonce)
            userinfo = self._userinfo(oauth, metadata, str(claims["sub"]))
        return self.identity_from_claims({**userinfo, **claims}, raw)

    def validate_id_token(self, raw: str, nonce: str) -> dict[str, Any]:
        """Return the claims of the ID token ``raw`` once its signature (the provider's JWKS;
        an unknown key id reads the JWKS again, once), issuer, audience (and ``azp``), expiry,
        issue time and ``nonce`` are right. Raises IdTokenRefused naming the failed check in
        its log message, OidcUnavailable when the JWKS cannot be read."""
        supported = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in supported if alg in ALGORITHMS] or ["RS256"]
        try:
            try:
                token = jwt.decode(raw, self.key_set(), algorithms=algorithms)
            except InvalidKeyIdError:
                log.info("oidc: ID token signed by an unknown key; reading %s's JWKS again",
                         self.issuer)
                token = jwt.decode(raw, self.key_set(refresh=True), algorithms=algorithms)
        except JoseError as error:
            raise IdTokenRefused(NOT_VERIFIED, "oidc: ID token signature refused: "
                                 f"{type(error).__name__}: {error}") from None
        except ValueError as error:
            raise IdTokenRefused(NOT_VERIFIED, "oidc: ID token unreadable: "
                                 f"{type(error).__name__}") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY, iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id}, sub={"essential": True},
            exp={"essential": True}, iat={"essential": True},
            nonce={"essential": True, "value": nonce})
        claims = dict(token.claims)
        try:
            registry.validate(claims)
        except JoseError as error:
            raise IdTokenRefused(NOT_VERIFIED, f"oidc: ID token refused: {error} "
                                 f"(sub {claims.get('sub')!r})") from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and \
                claims.get("azp") != self.client_id:
            raise IdTokenRefused(NOT_VERIFIED, "oidc: ID token with several audiences and "
                                 f"azp {claims.get('azp')!r}")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise IdTokenRefused(NOT_VERIFIED, "oidc: ID token without a subject")
        return claims

    def _userinfo(self, oauth: OAuth2Session, metadata: Mapping[str, Any],
                  subject: str) -> dict[str, Any]:
        endpoint = metadata.get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            return {}
        try:
            answer = oauth.get(endpoint, timeout=self.timeout,
                               headers={"Accept": "application/json"})
            answer.raise_for_status()
            claims = answer.json()
        except (requests.RequestException, AuthlibBaseError, ValueError) as error:
            raise OidcUnavailable(UNAVAILABLE, "oidc: userinfo unreadable: "
                                  f"{type(error).__name__}") from None
        if not isinstance(claims, dict) or claims.get("sub") != subject:
            raise IdTokenRefused(NOT_VERIFIED, "oidc: userinfo is about another subject")
        return claims

    def identity_from_claims(self, claims: Mapping[str, Any], id_token: str) -> OidcIdentity:
        """Return the identity the checked ``claims`` describe, mapped with
        :attr:`claims`. Raises SignInFailed when the user name or a uid/gid claim is
        unusable."""
        names = self.claims
        subject = str(claims["sub"])
        username = _text(claims, names.username).strip().lower()
        if not USERNAME_RE.match(username):
            raise SignInFailed(
                "Your account at the identity provider has no user name this portal can use "
                f"(claim '{names.username}'). Ask the facility's support.",
                f"oidc: subject {subject!r}: claim {names.username!r} = {username!r} is not "
                "a POSIX user name")
        groups = _texts(claims, names.groups)
        uid = _number(claims, names.uid, subject)
        gid = _number(claims, names.gid, subject)
        return OidcIdentity(
            issuer=self.issuer, subject=subject, username=username,
            display_name=_text(claims, names.display_name)[:200] or username,
            email=_text(claims, names.email)[:200], groups=groups,
            instruments=_texts(claims, names.instruments), uid=uid,
            gid=gid if gid is not None else uid,
            is_admin=bool(self.admin_group) and self.admin_group in groups, id_token=id_token)

    def logout_redirect(self, id_token: str, return_to: str) -> str | None:
        """Return the provider's end-session URL (``id_token_hint``,
        ``post_logout_redirect_uri`` = ``return_to``, ``client_id``), or None when the session
        did not come from the provider or it offers no RP-initiated logout. Raises nothing."""
        if not id_token:
            return None
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except OidcUnavailable as error:
            log.warning("oidc: no provider sign-out: %s", error.log_message)
            return None
        if not isinstance(endpoint, str) or not endpoint:
            return None
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": return_to,
                           "client_id": self.client_id})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name) if name else None
    return value if isinstance(value, str) else ""


def _texts(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name) if name else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(sorted({item.strip()[:100] for item in value
                         if isinstance(item, str) and item.strip()}))


def _number(claims: Mapping[str, Any], name: str, subject: str) -> int | None:
    if not name:
        return None
    value = claims.get(name)
    try:
        number = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) \
            else None
    except ValueError:
        number = None
    if number is None or not 1000 <= number < 2 ** 31:
        raise SignInFailed("Your account at the identity provider has no POSIX id this portal "
                           f"can use (claim '{name}'). Ask the facility's support.",
                           f"oidc: subject {subject!r}: claim {name!r} = {value!r} is not a "
                           "uid/gid of 1000 or more")
    return number


# --- sign-in records: the service side of the views -----------------------------------------

def begin_sign_in(db: Session, backend: OidcIdentityBackend, redirect_uri: str,
                  next_url: str) -> PendingLogin:
    """Record a new sign-in (state hash, PKCE verifier, nonce, where to go after) and return
    the provider URL and state for the browser. Forgets sign-ins older than
    :data:`LOGIN_TTL`. Raises OidcUnavailable when discovery fails."""
    db.execute(delete(OidcLogin).where(OidcLogin.created_at < utcnow() - LOGIN_TTL))
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    url = backend.authorization_url(redirect_uri, state, nonce, verifier)
    db.add(OidcLogin(state_hash=_digest(state), code_verifier=verifier, nonce=nonce,
                     next_url=next_url[:2048], created_at=utcnow()))
    db.flush()
    return PendingLogin(url=url, state=state)


def finish_sign_in(db: Session, settings: Settings, backend: OidcIdentityBackend,
                   state: str, expected_state: str, code: str, redirect_uri: str,
                   answered_issuer: str | None = None) -> tuple[User, str, str]:
    """Complete the sign-in the provider sent back: returns the account, the ID token (for
    the session's logout) and where to go next.

    ``expected_state`` is the state this browser's cookie holds: an answer meant for another
    browser is refused. The login row is used once. Raises SignInFailed (unknown, expired or
    foreign state; a disabled account; a user name taken by another account),
    IdTokenRefused (also when the answer's ``iss`` parameter, RFC 9207, names another
    issuer), OidcUnavailable.
    """
    if not state or not secrets.compare_digest(state, expected_state or ""):
        raise SignInFailed(EXPIRED_LOGIN, "oidc: callback state does not match this browser's")
    login = db.get(OidcLogin, _digest(state))
    if login is None:
        raise SignInFailed(EXPIRED_LOGIN, "oidc: unknown or used state")
    db.delete(login)
    db.flush()
    if utcnow() - login.created_at > LOGIN_TTL:
        raise SignInFailed(EXPIRED_LOGIN, "oidc: sign-in older than the login TTL")
    if answered_issuer is not None and answered_issuer != backend.issuer:
        raise IdTokenRefused(NOT_VERIFIED, f"oidc: the answer names the issuer "
                             f"{answered_issuer[:200]!r} (mix-up)")
    identity = backend.exchange(code, redirect_uri, login.code_verifier, login.nonce)
    user = account_for(db, settings, identity)
    return user, identity.id_token, login.next_url


def account_for(db: Session, settings: Settings, identity: OidcIdentity) -> User:
    """Return the account linked to the identity's (issuer, subject), creating it (and the
    link) at the first sign-in, with the identity's fields applied.

    The user name is taken from the claim only when the account is made; a later change of
    the claim leaves it (storage and the POSIX account are named after it). Groups,
    instruments, display name, e-mail, administrator and a claimed uid/gid follow the
    provider at every sign-in. Raises SignInFailed for a disabled account, a new user whose
    name is taken, or a claimed uid another account has.
    """
    link = db.scalar(select(IdentityLink).where(IdentityLink.issuer == identity.issuer,
                                                IdentityLink.subject == identity.subject))
    if link is None:
        if db.scalar(select(User.id).where(User.username == identity.username)) is not None:
            raise SignInFailed(
                f"An account called '{identity.username}' already exists on this portal and "
                "belongs to someone else. Ask an administrator to link it to your sign-in.",
                f"oidc: subject {identity.subject!r} of {identity.issuer} asks for the user "
                f"name {identity.username!r}, which another account has")
        user = create_user(db, settings, identity.username, None, source="oidc",
                           display_name=identity.display_name, email=identity.email)
        link = IdentityLink(user=user, issuer=identity.issuer, subject=identity.subject)
        db.add(link)
        log.info("oidc: new account %s for subject %r of %s", user.username, identity.subject,
                 identity.issuer)
    user = link.user
    if not user.is_active:
        raise SignInFailed("This account is disabled. Ask an administrator.",
                           f"oidc: disabled account {user.username} (subject "
                           f"{identity.subject!r})")
    if identity.username != user.username:
        log.info("oidc: subject %r now calls itself %r; the account keeps the name %s",
                 identity.subject, identity.username, user.username)
    if identity.uid is not None and identity.uid != user.uid:
        owner = db.scalar(select(User.username).where(User.uid == identity.uid,
                                                      User.id != user.id))
        if owner is not None:
            raise SignInFailed("Your POSIX id is already used by another account here. Ask "
                               "an administrator.", f"oidc: claimed uid {identity.uid} of "
                               f"{user.username} belongs to {owner}")
        user.uid = identity.uid
    if identity.gid is not None:
        user.gid = identity.gid
    user.display_name = identity.display_name
    user.email = identity.email
    user.groups = list(identity.groups)
    user.instruments = list(identity.instruments)
    user.is_admin = identity.is_admin
    user.identity_source = "oidc"
    user.last_sign_in_at = link.last_sign_in_at = utcnow()
    db.flush()
    return user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
