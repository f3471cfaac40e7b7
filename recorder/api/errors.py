"""Error bodies as the OpenAPI document declares them, shared by every router."""

from ninja import Schema


class Rejected(Schema):
    index: int
    error: str


class Error(Schema):
    detail: str
    rejected: list[Rejected] | None = None


class ValidationErrors(Schema):
    """django-ninja's own answer when a path or query parameter has the wrong type."""

    detail: list[dict]


# What a read endpoint can answer besides 200: a bad cursor or limit (400), no or a
# write-only key (401), another application's or a missing id (404), a parameter of the
# wrong type (422).
READ_ERRORS = {400: Error, 401: Error, 404: Error, 422: ValidationErrors}
