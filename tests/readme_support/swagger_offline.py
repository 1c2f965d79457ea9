"""The README's FastAPI app (`main.py`, as the README shows it) with Swagger UI's
JavaScript and CSS served from a local `swagger-ui-dist` instead of FastAPI's default
CDN, which the test machine cannot reach. Only the two asset URLs of `/docs` change;
the app, its routes and its OpenAPI schema are the README's. Used by tests/readme.rs.

Environment: SWAGGER_UI_DIST (the npm package's directory), SWAGGER_ASSETS_URL (the URL
the browser loads them from: this app's /swagger-assets, directly on uvicorn's port, as
a CDN is another origin too).
"""

import functools
import os

import fastapi.applications
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

from main import app

_base = os.environ["SWAGGER_ASSETS_URL"].rstrip("/")
# FastAPI's /docs handler calls this module-level name at request time.
fastapi.applications.get_swagger_ui_html = functools.partial(
    get_swagger_ui_html,
    swagger_js_url=f"{_base}/swagger-ui-bundle.js",
    swagger_css_url=f"{_base}/swagger-ui.css",
)
app.mount(
    "/swagger-assets",
    StaticFiles(directory=os.environ["SWAGGER_UI_DIST"]),
    name="swagger-assets",
)
