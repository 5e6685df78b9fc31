"""Real-ComfyUI test harness: provision ComfyUI 0.3.75 offline, run a server, run prompts."""
