# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
br_chat_lifecycle: a lifecycle-managed ROS 2 node serving a local llama.cpp LLM.

Each module is about one thing (docs/design.md draws how they fit together).

No ROS, llama.cpp (the engine):
  engine.py          scheduler: continuous batching over parallel slots, KV save/restore
  model_loading.py   GGUF checks (file, trained context, RAM) and model/context creation
  sampling.py        one request's sampler chain (grammar checked token by token)
  slots.py           a slot, the generation in it, its request and result
  session_cache.py   conversations' KV states in RAM (LRU by bytes) and in session_dir
  chat_prompt.py     chat-template rendering with injection-safe tokenization
  grammars.py        bounded JSON Schema -> GBNF, the GBNF check, a byte-bounded cache
  tool_calls.py      tools: checks, prompt, call grammars, parsing replies
  openai_backend.py  the same engine interface in front of an OpenAI-compatible server
  remote_url.py      server URLs without credentials
No ROS, no llama.cpp:
  chat_core.py       validation, admission, sessions, prompts and replies
  job_queue.py       admission: n_parallel running, max_queue waiting, one turn per session
  request_options.py per-request options and client-owned histories (messages_json)
  sessions.py        the conversations' text
  structured_output.py  output formats and the files behind them
  text_stream.py     UTF-8-safe streaming with stop-sequence hold-back
  feedback.py        streamed text as action feedback: per piece, batched or per sentence
  sentence_stream.py sentence-sized streaming for speech
  stats.py, memory.py   statistics, RSS
  config_paths.py    where config files are (share directory, source tree)
  node_process.py    the chat node as a child process (demo, benchmarks, tests)
  settings.py        every parameter, once (param_docs.py writes the YAML and README table)
ROS (rclpy):
  chat_node.py       the lifecycle node; reply_tracking.py: the rclpy internals it relies on
  node_main.py       run a node until shutdown (signal-aware; a raising callback is logged,
                     not fatal): every executable's main
  chat_diagnostics.py, diagnostics_compat.py   /diagnostics
  lifecycle_client.py, lifecycle_manager.py    driving lifecycle nodes
  client.py          a client for chat_service / chat_action / sessions / lifecycle
  tool_bridge.py, ros_schema.py   ROS services as LLM tools
  tts_bridge.py      speak a streamed reply sentence by sentence
  demo.py, examples/ the main job and example clients
"""
