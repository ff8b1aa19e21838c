"""The mutating admission webhook for Pods, as its own small ASGI app.

It runs beside the REST API under `dpsched serve --kubernetes` on its own port (the
API server calls webhooks over TLS: give it a certificate, e.g. from cert-manager). The
MutatingWebhookConfiguration scopes it to Pods labelled `dpsched.io/managed: "true"`
with `failurePolicy: Fail`, so an opted-in Pod is never admitted ungated.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dpsched.k8s.pods import admission_response

PATH = "/mutate/pods"


def create_webhook_app() -> FastAPI:
    app = FastAPI(title="dpsched admission webhook", openapi_url=None, docs_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(PATH)
    async def mutate(request: Request) -> JSONResponse:
        try:
            review: Any = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be an AdmissionReview (JSON)"}, 400)
        if not isinstance(review, dict) or not isinstance(review.get("request"), dict):
            return JSONResponse(
                {"error": "the body must be an AdmissionReview with a request"}, 400
            )
        return JSONResponse(admission_response(review))

    return app
