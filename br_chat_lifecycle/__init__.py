"""br_chat_lifecycle: a lifecycle-managed ROS 2 node serving a local llama.cpp LLM.

Layering (each module is about one thing):
  engine.py        llama-cpp-python wrapper (the ONLY module importing llama_cpp; no ROS)
  chat_prompt.py   chat-template rendering and injection-safe tokenization (no ROS)
  text_stream.py   UTF-8-safe incremental text + stop-sequence hold-back (no ROS)
  sessions.py      bounded multi-turn session store (no ROS)
  job_queue.py     bounded FIFO of chat jobs served by one worker thread (no ROS)
  chat_core.py     request validation, sessions, queue and engine glued together (no ROS)
  stats.py         counters and rolling latency/throughput statistics (no ROS)
  settings.py      every parameter: name, default, description, validation (no ROS)
  chat_node.py     the rclpy LifecycleNode: parameters, lifecycle, service, action, diagnostics
"""
