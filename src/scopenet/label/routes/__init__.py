"""The routers of the labelling app: :mod:`.auth` (log-in, log-out, sign-up, for pages and the API),
:mod:`.pages` (annotator pages), :mod:`.admin` (administration pages) and :mod:`.api` (JSON API)."""
from __future__ import annotations

from .admin import router as admin_router
from .api import router as api_router
from .auth import router as auth_router
from .pages import router as pages_router

__all__ = ["admin_router", "api_router", "auth_router", "pages_router"]
