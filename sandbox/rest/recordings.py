"""Recording access the way Vapi does it: 302 redirects to short-lived, signed, unauthenticated URLs.

Three pieces, all per sandbox (state lives in a ``RecordingVault`` found by ``vault_for(sandbox)``):

- **Signed storage URLs** ``/_storage/<callId>/<kind>.wav?X-Amz-...&X-Amz-Signature=<hmac hex>``,
  served on ``storage_origin(public_url)`` (the same server under another host name), mimic S3
  presigned URLs (same query names, so secret scrubbers that look for ``X-Amz-Signature`` work).
  The HMAC key comes from a per-sandbox random secret, never from the API key. The storage route
  refuses a request that also carries ``Authorization`` (a real S3 presigned URL does: "only one
  auth mechanism allowed"), answers S3-style XML 403 on a bad or expired signature, and otherwise
  serves the WAV bytes.
- **``GET /call/{id}/<kind>-recording``** (Bearer auth) answers 302 with a freshly signed URL.
- **Short links** ``/_links/<opaque>``: what the MCP recording tools hand out
  (``make_recording_link``): valid for ``link_ttl`` seconds, each use answers 302 to a freshly signed
  storage URL, 403 once expired. ``config.expire_first``: the first link handed out by either
  route is born expired, so clients must cope by asking again.

Expiry uses real time (``clock.real()``): clients judge it with their own clocks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response

from sandbox.rest.endpoints import Ctx, Endpoint, Handler
from sandbox.rest.validation import VapiHttpError
from sandbox.world.ids import iso_ms

if TYPE_CHECKING:
    from sandbox.core import SandboxCore

KINDS = ("mono", "stereo", "customer", "assistant", "video")
CONTENT_TYPES = {kind: "audio/wav" for kind in KINDS} | {"video": "video/mp4"}
EXTENSIONS = {kind: "wav" for kind in KINDS} | {"video": "mp4"}
# which artifact field says a recording of that kind exists, and the presigned field we add for it
_ARTIFACT_KINDS = {
    "mono": (("recording", "mono", "combinedUrl"), "presignedMonoUrl"),
    "stereo": (("recording", "stereoUrl"), "presignedStereoUrl"),
    "assistant": (("recording", "mono", "assistantUrl"), "presignedAssistantUrl"),
    "customer": (("recording", "mono", "customerUrl"), "presignedCustomerUrl"),
    "video": (("recording", "videoUrl"), "presignedVideoUrl"),
}


class SignatureProblem(Exception):
    """A storage request whose signature is missing, wrong or expired (S3 code + message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RecordingVault:
    """Per-sandbox signing secret, the ``expire_first`` latch, and URL building/verification."""

    def __init__(self, sandbox: SandboxCore) -> None:
        self._sandbox = weakref.ref(sandbox)
        secret = secrets.token_bytes(32)
        # separate derived keys: a leaked link token can never be replayed as a storage signature
        self._storage_key = hmac.new(secret, b"storage-v1", hashlib.sha256).digest()
        self._link_key = hmac.new(secret, b"link-v1", hashlib.sha256).digest()
        self._lock = threading.Lock()
        self._first_handed_out = False

    @property
    def sandbox(self) -> SandboxCore:
        """The owning sandbox (the vault never outlives it)."""
        sandbox = self._sandbox()
        if sandbox is None:
            raise RuntimeError("sandbox is gone")
        return sandbox

    def _born_expired(self) -> bool:
        """True exactly once when ``expire_first`` is set: for the first link of either route."""
        if not self.sandbox.config.expire_first:
            return False
        with self._lock:
            first = not self._first_handed_out
            self._first_handed_out = True
        return first

    # ------------------------------------------------------------ signed storage URLs
    def _storage_signature(self, call_id: str, kind: str, amz_date: str, expires: int) -> str:
        message = f"{call_id}\n{kind}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._storage_key, message, hashlib.sha256).hexdigest()

    def signed_storage_url(self, call_id: str, kind: str, *, expired: bool = False) -> tuple[str, float]:
        """A presigned URL on the public origin and its expiry (real epoch seconds)."""
        sandbox = self.sandbox
        now = sandbox.clock.real()
        ttl = max(sandbox.config.link_ttl, 0.0)
        issued = math.floor(now)
        # X-Amz-Date has whole-second resolution: stretch Expires so the URL lives at least `ttl`
        expires = max(1, math.ceil(ttl + (now - issued)))
        if expired:
            issued -= expires + 1  # signed as if issued in the past: valid signature, already expired
        amz_date = datetime.fromtimestamp(issued, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Date": amz_date,
                "X-Amz-Expires": str(expires),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": self._storage_signature(call_id, kind, amz_date, expires),
            }
        )
        url = f"{storage_origin(sandbox.public_url)}/_storage/{call_id}/{kind}.{EXTENSIONS[kind]}?{query}"
        return url, float(issued + expires)

    def redirect_url(self, call_id: str, kind: str) -> str:
        """A fresh signed URL for a 302 (the first one is born expired under ``expire_first``)."""
        return self.signed_storage_url(call_id, kind, expired=self._born_expired())[0]

    def verify_storage(self, call_id: str, kind: str, params: dict[str, str]) -> None:
        """Raise ``SignatureProblem`` unless ``params`` carry a valid, unexpired signature."""
        try:
            amz_date = params["X-Amz-Date"]
            expires = int(params["X-Amz-Expires"])
            signature = params["X-Amz-Signature"]
        except (KeyError, ValueError):
            raise SignatureProblem(
                "AccessDenied", "Query-string authentication requires the X-Amz parameters"
            ) from None
        expected = self._storage_signature(call_id, kind, amz_date, expires)
        if not hmac.compare_digest(expected, signature):
            raise SignatureProblem(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise SignatureProblem("AccessDenied", "X-Amz-Date must be in the ISO8601 Long Format") from None
        if self.sandbox.clock.real() > issued + expires:
            raise SignatureProblem("AccessDenied", "Request has expired")

    # ------------------------------------------------------------ short links
    def make_link(self, call_id: str, kind: str) -> dict[str, Any]:
        """``{url, content_type, expires_at}`` for a short-lived unauthenticated link."""
        sandbox = self.sandbox
        now = sandbox.clock.real()
        expires_at = now - 1.0 if self._born_expired() else now + sandbox.config.link_ttl
        payload = f"{call_id}:{kind}:{int(expires_at * 1000)}"
        token = _b64(payload.encode()) + "." + self._link_mac(payload)
        return {
            "url": f"{sandbox.public_url}/_links/{token}",
            "content_type": CONTENT_TYPES[kind],
            "expires_at": iso_ms(expires_at),
        }

    def _link_mac(self, payload: str) -> str:
        return _b64(hmac.new(self._link_key, payload.encode(), hashlib.sha256).digest()[:18])

    def open_link(self, token: str) -> tuple[str, str]:
        """``(call_id, kind)`` of a valid link; 403 when forged, malformed or expired."""
        encoded, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            call_id, kind, expires_ms = payload.rsplit(":", 2)
            expires_at = int(expires_ms) / 1000
        except ValueError:
            raise VapiHttpError(403, "Invalid recording link") from None
        if not hmac.compare_digest(self._link_mac(payload), mac) or kind not in KINDS:
            raise VapiHttpError(403, "Invalid recording link")
        if self.sandbox.clock.real() > expires_at:
            raise VapiHttpError(403, "Recording link expired; request a new one")
        return call_id, kind

    # ------------------------------------------------------------ inline presigned fields
    def with_presigned_urls(self, call: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``call`` whose artifact carries fresh ``presigned*Url`` + ``presignedUrlsExpiresAt``.

        Generated per response, never stored (Vapi does the same: values differ between reads). Only
        kinds the artifact says exist get a URL.
        """
        artifact = call.get("artifact")
        if not isinstance(artifact, dict):
            return call
        fresh = dict(artifact)
        expiry: float | None = None
        for kind, (path, field_name) in _ARTIFACT_KINDS.items():
            if _dig(artifact, path):
                fresh[field_name], expiry = self.signed_storage_url(call["id"], kind)
        if expiry is None:
            return call
        fresh["presignedUrlsExpiresAt"] = iso_ms(expiry)
        return {**call, "artifact": fresh}


_vaults: weakref.WeakKeyDictionary[Any, RecordingVault] = weakref.WeakKeyDictionary()
_vaults_lock = threading.Lock()


def vault_for(sandbox: SandboxCore) -> RecordingVault:
    """The sandbox's vault (created on first use; one per sandbox, so one secret per sandbox).

    A view of a sandbox (a Truto server minted for an account sees it through one) names the sandbox
    it stands for in ``base_sandbox``: links it hands out must open on that sandbox's REST app.
    """
    sandbox = getattr(sandbox, "base_sandbox", sandbox)
    with _vaults_lock:
        vault = _vaults.get(sandbox)
        if vault is None:
            vault = _vaults[sandbox] = RecordingVault(sandbox)
        return vault


def storage_origin(public_url: str) -> str:
    """The origin signed storage URLs live on: the API's own server under *another host name*.

    On Vapi, presigned URLs point at a storage host, not at api.vapi.ai, so HTTP clients following
    the 302 drop the ``Authorization`` header (httpx does on a cross-host redirect), which the
    storage refuses. The sandbox keeps that property: ``127.0.0.1`` <-> ``localhost`` (same
    server, same port) and ``x.localhost`` -> ``storage.x.localhost``; any other host is kept.
    A path prefix stays (an account of a sandbox fleet lives under ``/a/<account id>``).
    """
    parts = urlsplit(public_url)
    host = parts.hostname or ""
    if host == "127.0.0.1":
        other = "localhost"
    elif host == "localhost":
        other = "127.0.0.1"
    elif host.endswith(".localhost") and not host.startswith("storage."):
        other = f"storage.{host}"
    else:
        return public_url.rstrip("/")
    netloc = other if parts.port is None else f"{other}:{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def recording_bytes(sandbox: SandboxCore, call_id: str, kind: str) -> bytes:
    """The recording, or a NestJS 404 when the call or that recording does not exist."""
    from sandbox.world.workspace import NotFound

    if kind not in KINDS:
        raise VapiHttpError(404, f"Recording kind {kind!r} does not exist")
    try:
        data = sandbox.workspace.call_recording(call_id, kind)
    except NotFound:
        raise VapiHttpError(404, "Call not found") from None
    if data is None:
        raise VapiHttpError(404, f"Call {call_id} has no {kind} recording")
    return data


def make_recording_link(sandbox: SandboxCore, call_id: str, kind: str) -> dict[str, Any]:
    """``{url, content_type, expires_at}``: a short-lived unauthenticated link to one recording.

    For the MCP recording tools. Raises ``VapiHttpError`` 404 when the call or that recording does
    not exist (so the tool can return the 404 envelope instead of a dead link).
    """
    recording_bytes(sandbox, call_id, kind)
    return vault_for(sandbox).make_link(call_id, kind)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


# ---------------------------------------------------------------- routes
_S3_XML = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'


def _s3_error(status: int, code: str, message: str) -> Response:
    return Response(_S3_XML.format(code=code, message=message), status, media_type="application/xml")


def _recording_route(kind: str) -> Handler:
    async def handler(ctx: Ctx) -> Response:
        ctx.query({})
        call_id = ctx.params["id"]
        recording_bytes(ctx.sandbox, call_id, kind)  # 404 when the call or the recording is missing
        url = vault_for(ctx.sandbox).redirect_url(call_id, kind)
        return Response(status_code=302, headers={"Location": url})

    handler.__doc__ = f"GET /call/{{id}}/{kind}-recording: 302 to a fresh signed storage URL"
    return handler


def _missing_artifact(name: str) -> Handler:
    async def handler(ctx: Ctx) -> Response:
        ctx.query({})
        from sandbox.rest.endpoints import workspace_errors

        with workspace_errors():
            ctx.sandbox.workspace.get_call(ctx.params["id"])
        raise VapiHttpError(404, f"Call {ctx.params['id']} has no {name}")

    handler.__doc__ = f"GET /call/{{id}}/{name}: the sandbox records no {name} (404)"
    return handler


async def open_link(ctx: Ctx) -> Response:
    """``GET /_links/{token}`` (no auth): 302 to a freshly signed storage URL while the link is valid."""
    vault = vault_for(ctx.sandbox)
    call_id, kind = vault.open_link(ctx.params["token"])
    return Response(status_code=302, headers={"Location": vault.redirect_url(call_id, kind)})


async def storage(ctx: Ctx) -> Response:
    """``GET /_storage/{callId}/{file}`` (no auth): the bytes, if the presigned query is valid."""
    if "authorization" in ctx.request.headers:
        # a real S3 presigned URL refuses a second credential instead of ignoring it
        return _s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
            "string parameter or the Authorization header should be specified",
        )
    kind, _, extension = ctx.params["file"].partition(".")
    if kind not in KINDS or extension != EXTENSIONS[kind]:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    call_id = ctx.params["call_id"]
    try:
        vault_for(ctx.sandbox).verify_storage(call_id, kind, dict(ctx.request.query_params))
    except SignatureProblem as problem:
        return _s3_error(403, problem.code, problem.message)
    try:
        data = recording_bytes(ctx.sandbox, call_id, kind)
    except VapiHttpError:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(data, 200, media_type=CONTENT_TYPES[kind], headers={"Cache-Control": "private, max-age=0"})


def endpoints() -> list[Endpoint]:
    """The recording routes: Vapi's 302 endpoints, the short links and the signed storage."""
    routes = [Endpoint("GET", f"/call/{{id}}/{kind}-recording", _recording_route(kind)) for kind in KINDS]
    routes += [Endpoint("GET", f"/call/{{id}}/{name}", _missing_artifact(name)) for name in ("call-logs", "pcap")]
    routes.append(Endpoint("GET", "/_links/{token}", open_link, auth=False, api=False, transport="link"))
    routes.append(Endpoint("GET", "/_storage/{call_id}/{file}", storage, auth=False, api=False, transport="storage"))
    return routes
