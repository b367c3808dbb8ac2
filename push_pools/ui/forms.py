"""Reading HTML form posts (urlencoded; no multipart parser needed) and turning validation
errors into messages beside the fields they are about."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from pydantic import ValidationError


async def form_data(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


FormDep = Annotated[dict[str, str], Depends(form_data)]


def field_errors(exc: ValidationError) -> dict[str, str]:
    """The server's messages by field name (the API's wording), '' for the form as a whole."""
    from push_pools.api.app import _in_words

    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        field = loc[0] if loc else ""
        rest = ".".join(loc[1:])
        message = _in_words(dict(error))
        errors[field] = f"{rest}: {message}" if rest else message
    return errors
