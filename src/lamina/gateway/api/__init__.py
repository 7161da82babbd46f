"""The gateway's HTTP surface: thin Starlette endpoints that parse, call the service,
and render — OpenAI's wire shapes in openai.py, Anthropic's in anthropic.py, the
root-authenticated admin API in admin.py, and every error rendered in errors.py; app.py
serves them, the model calls without Starlette's middleware."""
