"""A real ComfyUI server for tests: started on a free loopback port, isolated in its own base
directory (custom_nodes, models, input, output, user, database), and stopped by PID.

The server runs ``main.py --cpu`` from the provisioned ComfyUI source with this pack and the
test-only probe pack linked into its ``custom_nodes``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.comfy_harness.values import load_value, save_value

MODEL_FOLDERS = ("diffusion_models", "vae", "text_encoders", "clip_vision", "loras", "dreamactor_pose")
PROBE_FOLDER = "dreamactor_probes"


class PromptFailed(RuntimeError):
    """A prompt was rejected at validation or failed while executing.

    ``node_errors`` holds ComfyUI's validation errors; ``node_type`` and ``exception_message`` the
    execution error, when there was one.
    """

    def __init__(self, message: str, node_errors: dict | None = None,
                 node_type: str | None = None, exception_message: str | None = None) -> None:
        super().__init__(message)
        self.node_errors = node_errors or {}
        self.node_type = node_type
        self.exception_message = exception_message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    """One ComfyUI process with its own folders; ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, comfy_dir: Path, base_dir: Path, packs: dict[str, Path],
                 models_dir: Path | None = None, cpu: bool = True) -> None:
        self.comfy_dir = comfy_dir
        self.cpu = cpu
        self.base_dir = base_dir
        self.models_dir = models_dir or base_dir / "extra_models"
        self.input_dir = base_dir / "input"
        self.output_dir = base_dir / "output"
        self.log_path = base_dir / "comfyui.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        self._process: subprocess.Popen | None = None
        self._packs = packs

    # --- lifecycle -------------------------------------------------------------------------
    def _prepare_folders(self) -> Path:
        for folder in ("custom_nodes", "input", "output", "user"):
            (self.base_dir / folder).mkdir(parents=True, exist_ok=True)
        for name, source in self._packs.items():
            link = self.base_dir / "custom_nodes" / name
            if not link.exists():
                link.symlink_to(source, target_is_directory=True)
        lines = ["dreamactor_tests:", f"    base_path: {self.models_dir}"]
        for folder in MODEL_FOLDERS:
            (self.models_dir / folder).mkdir(parents=True, exist_ok=True)
            lines.append(f"    {folder}: {folder}/")
        config = self.base_dir / "extra_model_paths.yaml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        config = self._prepare_folders()
        command = [
            sys.executable, "main.py", *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base_dir),
            "--database-url", f"sqlite:///{self.base_dir / 'comfyui.db'}",
            "--extra-model-paths-config", str(config),
            "--disable-api-nodes", "--disable-auto-launch",
        ]
        log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            command, cwd=self.comfy_dir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- HTTP --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body)

    def object_info(self, node_class: str | None = None) -> dict:
        return self.get("/object_info" + (f"/{node_class}" if node_class else ""))

    # --- prompts -----------------------------------------------------------------------------
    def queue(self, prompt: dict) -> str:
        """POST /prompt; a prompt any of whose outputs fails validation raises PromptFailed with the
        node errors (ComfyUI itself would quietly run the outputs that did validate)."""
        try:
            answer = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except urllib.error.HTTPError as error:
            details = json.loads(error.read() or b"{}")
            message = details.get("error", {})
            text = message.get("message", str(message)) if isinstance(message, dict) else str(message)
            raise PromptFailed(f"prompt rejected: {text}: {json.dumps(details.get('node_errors'))}",
                               node_errors=details.get("node_errors")) from None
        if answer.get("node_errors"):
            # ComfyUI still runs the outputs that validated; a test must not mistake that for success.
            self.post("/queue", {"delete": [answer["prompt_id"]]})
            self.interrupt()
            raise PromptFailed(f"prompt partly rejected: {json.dumps(answer['node_errors'])}",
                               node_errors=answer["node_errors"])
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """Follow /history until the prompt finishes; an execution error raises PromptFailed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "error":
                    for kind, details in status.get("messages", []):
                        if kind in ("execution_error", "execution_interrupted"):
                            raise PromptFailed(
                                f"{kind} in {details.get('node_type')}: {details.get('exception_message', '')}",
                                node_type=details.get("node_type"),
                                exception_message=details.get("exception_message"),
                            )
                    raise PromptFailed(f"prompt failed: {status}")
                return entry
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running a prompt:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue an API-format prompt, wait for it, return its outputs by node id."""
        return self.wait(self.queue(prompt), timeout)["outputs"]

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    # --- exact values in and out ------------------------------------------------------------
    def feed(self, name: str, value: Any) -> None:
        """Make ``value`` available to a ``DreamActorTest_Feed`` node of the same name."""
        save_value(value, self.input_dir / PROBE_FOLDER / name)

    def probe(self, name: str) -> Any:
        """The value a ``DreamActorTest_Probe`` node saved under ``name``."""
        return load_value(self.output_dir / PROBE_FOLDER / name)
