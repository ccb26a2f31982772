"""The console's chat with retired models: conversations kept per account, exported and
deleted by their owner. Spec: docs/design/chat.md."""

from emeritus.chat.conversations import (
    MAX_MESSAGE,
    ChatMessage,
    Conversation,
    Conversations,
    reviewable,
)
from emeritus.chat.tables import ChatMessageRecord, ConversationRecord

__all__ = [
    "MAX_MESSAGE",
    "ChatMessage",
    "ChatMessageRecord",
    "Conversation",
    "ConversationRecord",
    "Conversations",
    "reviewable",
]
