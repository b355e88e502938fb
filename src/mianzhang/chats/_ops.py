"""The changes a chat store makes, as pure functions on a :class:`Chat` (no I/O, no clock).

Both backends run these, so they agree: the memory store under no lock at all (nothing awaits
between read and write), the Redis store between a read and a compare-and-set write of the
chat's revision (retried when another write got in between).
"""

from __future__ import annotations

from typing import Any

from ._model import Chat, Turn

__all__ = ["begin_turn", "finish_turn", "rename"]


def begin_turn(
    chat: Chat,
    turn: Turn,
    *,
    replaces: str | None,
    messages: list[dict[str, Any]] | None,
    model: str | None,
    title: str | None = None,
    now: float,
) -> bool:
    """Make ``turn`` the chat's turn if its current turn's stream is ``replaces`` (``None``:
    the chat has had none); ``messages`` (if given) replace the chat's, ``model`` (if given)
    its model, ``title`` its title if it has none yet. ``False`` (nothing changed) when
    another turn got there first."""
    current = chat.turn.stream if chat.turn is not None else None
    if current != replaces:
        return False
    chat.turn = turn
    if messages is not None:
        chat.messages = messages
    if model:
        chat.model = model
    if title and not chat.title:
        chat.title = title
    chat.updated = now
    return True


def finish_turn(chat: Chat, stream: str, message: dict[str, Any] | None, *, now: float) -> bool:
    """The generation of ``stream`` ended with ``message`` (its final answer, or ``None``).

    The message replaces the chat's message with the same id if there is one (a client that
    posted it back already, a replay), else it is appended, but only while ``stream`` is
    still the chat's turn: the answer of a turn the client has moved past (a regenerated
    one) is not brought back. The turn stops counting as running. ``False`` if nothing
    changed."""
    changed = False
    current = chat.turn is not None and chat.turn.stream == stream
    if message is not None:
        ident = message.get("id")
        at = next((i for i, m in enumerate(chat.messages) if m.get("id") == ident), None)
        if at is not None:
            chat.messages[at] = message
            changed = True
        elif current:
            chat.messages.append(message)
            changed = True
    if current and chat.turn is not None and chat.turn.active_until > 0:
        chat.turn = Turn(chat.turn.stream, chat.turn.client_id, 0.0)
        changed = True
    if changed:
        chat.updated = now
    return changed


def rename(chat: Chat, *, title: str | None, model: str | None) -> None:
    """Set the title and/or model (``None``: unchanged). ``updated`` is left alone: lists are
    ordered by activity, and renaming is not activity."""
    if title is not None:
        chat.title = title
    if model is not None:
        chat.model = model
