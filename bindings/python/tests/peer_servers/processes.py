"""Server processes for the peer tests: started on a free loopback port, their output drained by a
thread (a full pipe would stall the server) and kept for the checks made when they stop."""

import subprocess
import threading

from ports import wait_for_port


class ServerProcess:
    def __init__(self, argv, port, env=None, cwd=None, seconds=60):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        try:
            wait_for_port(port, seconds=seconds, process=self.process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.close()[-3000:]}") from None

    def _drain(self):
        for line in self.process.stdout:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def close(self) -> str:
        """Stops the server; its whole output."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.log
