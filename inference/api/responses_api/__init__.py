"""The OpenAI Responses API (`/v1/responses`): its request contract, its items turned into the
chat-shaped messages the shared path takes, its response object and stream events, and the
stored responses that `previous_response_id` continues from."""
