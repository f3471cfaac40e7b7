from django import template

register = template.Library()


@register.filter(name="bytes")
def human_bytes(value) -> str:
    """1536 -> "1.5 KiB"."""
    try:
        n = float(value or 0)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
