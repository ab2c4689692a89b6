"""ASGI middleware of the labelling app: the request-body size limit."""
from __future__ import annotations

from fastapi.responses import JSONResponse


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """ASGI middleware refusing request bodies over ``limit`` bytes with 413.

    A declared ``Content-Length`` over the limit is refused before the body is read. A body without
    one (``Transfer-Encoding: chunked``) is counted as it arrives; once past the limit the app's
    reading fails, whatever the app would answer then (a body-parsing 400, say) is dropped and
    413 is sent instead.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": f"request larger than {self.limit:,} bytes"}, status_code=413)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    return await self._too_large()(scope, receive, send)
        seen, exceeded, started = 0, False, False

        async def limited_receive():
            nonlocal seen, exceeded
            if exceeded:
                raise BodyTooLarge()
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise BodyTooLarge()
            return msg

        async def guarded_send(msg):
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body cut short is replaced by 413 below
            started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._too_large()(scope, receive, send)
