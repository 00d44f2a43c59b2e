"""Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`), for Claude Code and
the Anthropic SDKs: its request contract, its conversion into the OpenAI-shaped request the
shared path takes (chat.build_chat_request), its message object and stream events over a
Generation, and its error shape. No second path into the engine."""
