"""WhatsApp's approved templates (Twilio's Content API), sent by a campaign or by an agent from a conversation:
outside WhatsApp's 24-hour session window a business may send only a template WhatsApp approved. The template is
checked with the provider (it exists, it is approved, each of its {{1}}, {{2}}... is given a value) and its body,
with each variable's value in place, becomes the campaign's text: the text every recipient's values are rendered
into, shown on the timeline and in previews. One customer's message (an agent's, a campaign's test) is for_one."""

from __future__ import annotations

import re
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from hub.campaigns.render import Missing, Profile, TemplateError, check, render
from hub.channels.base import APPROVED, Channel, MessageTemplate, SendError, TemplateSource

_SLOT = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")


class TemplateChoice(BaseModel):
    """The template a campaign sends, and what fills each of its variables."""

    model_config = ConfigDict(extra="forbid")

    sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$", description="the template's ContentSid")
    variables: dict[str, str] = Field(
        default_factory=dict, max_length=100,
        description='"1", "2"... -> a value, campaign variables allowed: {"1": "{{first_name | fallback: \\"you\\"}}"}')


class Refused(ValueError):
    """The template cannot be sent (not approved, a variable without a value...): the message says why (a 4xx)."""


class Unavailable(RuntimeError):
    """The provider could not be asked now (a 5xx or network trouble): the message says why (a 502)."""


def source(channel: Channel | None) -> TemplateSource:
    if channel is None or not channel.capabilities.templates:
        raise Refused("approved templates need the whatsapp channel (channels.twilio with whatsapp on)")
    return cast(TemplateSource, channel)


def slots(template: MessageTemplate) -> list[str]:
    """The template's variables in order: those it declares and those its body uses."""
    used = {m.group(1) for m in _SLOT.finditer(template.body)} | set(template.variables)
    return sorted(used, key=int)


async def fetch(channel: Channel | None, sid: str) -> MessageTemplate:
    try:
        return await source(channel).template(sid)
    except SendError as e:
        if e.permanent:  # no such template, or the credentials are wrong
            raise Refused(e.reason) from None
        raise Unavailable(e.reason) from None


def campaign_text(template: MessageTemplate, choice: TemplateChoice) -> str:
    """The campaign's text: the template's body with each variable's value (campaign variables and all) in place.
    Raises Refused when the template is not approved for WhatsApp or a variable has no value."""
    if template.approval != APPROVED:
        why = f": {template.rejection_reason}" if template.rejection_reason else ""
        raise Refused(f"template {template.name!r} is not approved for WhatsApp (its status is "
                      f"{template.approval}{why}); only an approved template can be sent")
    wanted = slots(template)
    extra = sorted(set(choice.variables) - set(wanted))
    if extra:
        raise Refused(f"template {template.name!r} has no variable {', '.join('{{' + k + '}}' for k in extra)} "
                      f"(its variables: {', '.join('{{' + k + '}}' for k in wanted) or 'none'})")
    for key in wanted:
        value = choice.variables.get(key, "")
        if not value.strip():
            sample = template.variables.get(key)
            raise Refused("give a value for template variable {{" + key + "}}"
                          + (f" (its sample: {sample!r})" if sample else ""))
        try:
            check(value)
        except TemplateError as e:
            raise Refused("template variable {{" + key + "}}: " + str(e)) from None
    return _SLOT.sub(lambda m: choice.variables.get(m.group(1), m.group(0)), template.body)


def values(variables: dict[str, str], profile: Profile) -> tuple[dict[str, str] | None, str | None]:
    """ContentVariables for one recipient: (the values, None), or (None, why they are skipped)."""
    out: dict[str, str] = {}
    for key, value in variables.items():
        try:
            out[key] = render(value, profile)
        except Missing as e:
            return None, "template variable {{" + key + "}}: " + str(e)
    return out, None


def for_one(template: MessageTemplate, choice: TemplateChoice, profile: Profile) -> tuple[str, dict[str, str]]:
    """What one customer is sent (an agent's template from a conversation, a campaign's test): the text they read
    and the ContentVariables. Raises Refused as campaign_text does, and for a variable with no value for them."""
    text = campaign_text(template, choice)
    filled, why = values(choice.variables, profile)
    if filled is None:
        raise Refused(why or "a template variable has no value")
    try:
        return render(text, profile), filled
    except Missing as e:  # a campaign variable in the template's own body (not one of its {{1}}, {{2}}...)
        raise Refused(str(e)) from None
