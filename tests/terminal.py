"""Running a command with stdin or stderr on a pseudo-terminal."""

import os
import pty
import subprocess
import threading


def run_in_terminal(args, env=None, stdin_terminal=False,
                    stderr_terminal=False, input_text='', timeout=120):
    """Run `args`; return ``(returncode, stdout, stderr, terminal)``.

    stdin and stderr are pipes unless `stdin_terminal` or
    `stderr_terminal` makes them the terminal. `input_text`
    goes to stdin either way. `terminal` is what the program wrote to the
    terminal, echoed input included; `stderr` is '' when it went there.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        args, env=env,
        stdin=slave if stdin_terminal else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=slave if stderr_terminal else subprocess.PIPE)
    os.close(slave)
    chunks = []
    reader = threading.Thread(target=_read_all, args=(master, chunks),
                              daemon=True)
    reader.start()
    if stdin_terminal:
        os.write(master, input_text.encode('utf-8'))
        input_text = None
    try:
        stdout, stderr = process.communicate(
            None if input_text is None else input_text.encode('utf-8'),
            timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(10)
        os.close(master)
    return (process.returncode, stdout.decode('utf-8'),
            (stderr or b'').decode('utf-8'),
            b''.join(chunks).decode('utf-8', 'replace'))


def _read_all(fd, chunks):
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            # EIO: every process holding the terminal has exited.
            return
        if not chunk:
            return
        chunks.append(chunk)
