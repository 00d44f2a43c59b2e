"""The JSON Schema the constrained-decoding tests and benches share: a nested object with
enums, arrays, bounds and required fields, small enough that a 135M model finishes it well
inside max_tokens (strings and arrays are bounded)."""

PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 15}, "minItems": 1, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 30},
                "country": {"type": "string", "enum": ["FR", "DE", "US", "JP"]},
            },
            "required": ["city", "country"],
            "additionalProperties": False,
        },
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "role", "tags", "address"],
    "additionalProperties": False,
}

PROFILE_EXAMPLE = {
    "name": "Ada Lovelace", "age": 36, "role": "admin", "tags": ["math", "engines"],
    "address": {"city": "London", "country": "US"}, "active": True,
}
