"""Jupyter's own conformance suite (jupyter_kernel_test) against the installed retinanet-kernel
kernelspec, with every standard check enabled, plus stdin input and interrupt/shutdown checks
through jupyter_client. Run by test/conformance.test.ts with Debian's Python."""
import os
import time
import unittest

import jupyter_kernel_test as jkt
from jupyter_kernel_test.msgspec_v5 import validate_message

TIMEOUT = 30


class RetinaNetKernelTests(jkt.KernelTests):
    kernel_name = os.environ.get("RK_KERNEL_NAME", "retinanet-kernel")
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("some error")'
    completion_samples = [
        {"text": "Math.ab", "matches": {"abs"}},
        {"text": "%lsm", "matches": {"%lsmagic"}},
        {"text": "const sample = [1, 2]; sample.inclu", "matches": {"includes"}},
    ]
    complete_code_samples = ["1", "let x = 2;", "function f() {\n  return 1;\n}", "%time 1", "%lsmagic\n1 + 1"]
    incomplete_code_samples = ["function f() {", "let a = [1,", "if (true) {\n  console.log(1);", "const s = `abc"]
    invalid_code_samples = ["let x = )", "1 +* 2", "}"]
    code_page_something = "%time?"
    code_generate_error = 'throw new Error("boom")'
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"a" + "b"', "result": "'ab'"},
        {"code": "[1, 2, 3].length", "result": "3"},
    ]
    code_display_data = [
        {"code": 'display.html("<b>bold</b>")', "mime": "text/html"},
        {"code": "display.svg(\"<svg xmlns='http://www.w3.org/2000/svg'></svg>\")", "mime": "image/svg+xml"},
        {"code": "display.png(new Uint8Array([137, 80, 78, 71]))", "mime": "image/png"},
        {"code": 'display.markdown("# title")', "mime": "text/markdown"},
    ]
    code_history_pattern = "6 * 7"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "Math.abs"
    code_clear_output = "clearOutput()"

    def test_stdin_input(self):
        """`await input()` sends input_request on stdin and uses the input_reply."""
        self.flush_channels()
        msg_id = self.kc.execute('const who = await input("name?"); console.log("hello " + who)', allow_stdin=True)
        req = self.kc.get_stdin_msg(timeout=TIMEOUT)
        self.assertEqual(req["header"]["msg_type"], "input_request")
        self.assertEqual(req["parent_header"]["msg_id"], msg_id)
        self.assertEqual(req["content"]["prompt"], "name?")
        self.assertFalse(req["content"]["password"])
        self.kc.input("tester")
        reply = self.get_non_kernel_info_reply(timeout=TIMEOUT)
        validate_message(reply, "execute_reply", msg_id)
        self.assertEqual(reply["content"]["status"], "ok")
        text = ""
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        self.assertIn("hello tester", text)

    def test_stdin_refused_without_allow_stdin(self):
        """input() without allow_stdin is a clear error, as IPython's StdinNotImplementedError."""
        self.flush_channels()
        msg_id = self.kc.execute('await input("x")', allow_stdin=False)
        reply = self.get_non_kernel_info_reply(timeout=TIMEOUT)
        validate_message(reply, "execute_reply", msg_id)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual(reply["content"]["ename"], "StdinNotImplementedError")

    def run_code(self, code, timeout=TIMEOUT):
        """Executes code; returns (reply, outputs of that request) after its idle status."""
        msg_id = self.kc.execute(code, allow_stdin=False)
        reply = self.get_non_kernel_info_reply(timeout=timeout)
        outputs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return reply, outputs
            outputs.append(msg)

    def interrupt_after(self, code, delay=0.5):
        """Executes code, interrupts it through jupyter_client after `delay`; returns the reply and seconds to it."""
        self.flush_channels()
        msg_id = self.kc.execute(code, allow_stdin=False)
        time.sleep(delay)
        t0 = time.time()
        self.km.interrupt_kernel()
        reply = self.get_non_kernel_info_reply(timeout=TIMEOUT)
        elapsed = time.time() - t0
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        self.flush_channels()
        return reply, elapsed

    def test_interrupt_busy_loop_keeps_state(self):
        """`while (true) {}` stops within 1 s of interrupt_request; earlier variables survive."""
        self.assertEqual(self.km.kernel_spec.interrupt_mode, "message")
        self.run_code("const keepMe = 41;")
        reply, elapsed = self.interrupt_after("while (true) {}")
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual(reply["content"]["ename"], "KeyboardInterrupt")
        self.assertLess(elapsed, 1.0)
        reply, outputs = self.run_code("keepMe + 1")
        self.assertEqual(reply["content"]["status"], "ok")
        self.assertEqual([o["content"]["data"]["text/plain"] for o in outputs if o["msg_type"] == "execute_result"], ["42"])

    def test_interrupt_pending_await(self):
        """An await that never resolves is interrupted the same way."""
        reply, elapsed = self.interrupt_after("await new Promise(() => {})")
        self.assertEqual(reply["content"]["ename"], "KeyboardInterrupt")
        self.assertLess(elapsed, 1.0)

    def test_interrupt_loop_in_callback(self):
        """A loop inside a timer callback (after an await) is stopped too, and the kernel keeps working."""
        reply, elapsed = self.interrupt_after("await new Promise<void>((r) => setTimeout(() => { while (true) {} r(); }, 10))")
        self.assertEqual(reply["content"]["ename"], "KeyboardInterrupt")
        self.assertLess(elapsed, 1.0)
        reply, outputs = self.run_code("[1, 2, 3].map((x) => x * 2)")
        self.assertEqual(reply["content"]["status"], "ok")

    def test_stop_on_error_aborts_queued(self):
        """After an error, queued execute requests are answered "aborted" (stop_on_error)."""
        self.flush_channels()
        # The failing cell waits 300 ms first, so that the second request is queued behind it even
        # when a loaded machine delays this client between its two sends (a request sent after the
        # error reply is not aborted, as in ipykernel).
        first = self.kc.execute("await new Promise((r) => setTimeout(r, 300)); throw new Error('first')", allow_stdin=False)
        second = self.kc.execute("1 + 1", allow_stdin=False)
        replies = {}
        while len(replies) < 2:
            r = self.get_non_kernel_info_reply(timeout=TIMEOUT)
            replies[r["parent_header"]["msg_id"]] = r["content"]["status"]
        self.assertEqual(replies[first], "error")
        self.assertEqual(replies[second], "aborted")
        self.flush_channels()


class ShutdownTests(unittest.TestCase):
    """shutdown_request (with and without restart) through jupyter_client's KernelManager."""

    def test_shutdown_and_restart(self):
        from jupyter_client.manager import start_new_kernel

        km, kc = start_new_kernel(kernel_name=RetinaNetKernelTests.kernel_name)
        try:
            kc.execute_interactive("const keptBeforeRestart = 1;", timeout=TIMEOUT)
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=TIMEOUT)
            reply = kc.execute_interactive("typeof keptBeforeRestart", timeout=TIMEOUT)
            self.assertEqual(reply["content"]["status"], "error")  # fresh session: `keptBeforeRestart` is gone
            self.assertEqual(reply["content"]["ename"], "TSError")
            km.shutdown_kernel(now=False)
            self.assertFalse(km.is_alive())
        finally:
            kc.stop_channels()
            if km.is_alive():
                km.shutdown_kernel(now=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
