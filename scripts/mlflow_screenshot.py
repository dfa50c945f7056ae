"""Screenshot one MLflow UI page headlessly, after closing the assistant panel and expanding every run group.

    python scripts/mlflow_screenshot.py URL OUT.png [--wait 15]

Drives Debian's chromium over the DevTools protocol (needs the `websocket-client` package,
`pip install websocket-client`; it is not a project dependency): MLflow 3.17 opens its assistant
panel over a quarter of the page and shows child runs collapsed under their parent, so a plain
`chromium --screenshot` shows neither the runs nor their logged models. scripts/mlflow_screenshots.sh
calls it for the figures in docs/.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
import time
import urllib.request

import websocket

CLEAN_UP = """
(() => {
  const close = document.querySelector('[data-component-id="mlflow.assistant.chat_panel.close"]');
  if (close) close.click();
  let expanded = 0;  // the +/- button in a parent run's name cell
  for (const button of document.querySelectorAll('.ag-row [col-id="attributes.`Run Name`"] button')) {
    if (button.getAttribute('data-component-id').includes('runnamecellrenderer') && !button.dataset.shot) {
      button.dataset.shot = '1'; button.click(); expanded++;
    }
  }
  return JSON.stringify({closed: !!close, expanded});
})()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds for the page to load")
    parser.add_argument("--port", type=int, default=9333)
    args = parser.parse_args()
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
                                f"--remote-debugging-port={args.port}", f"--user-data-dir={profile}", args.url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/json", timeout=2) as answer:
                    pages = [p for p in json.load(answer) if p.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("chromium's DevTools endpoint never answered")
            time.sleep(0.5)
        socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60)
        counter = iter(range(1, 1000))

        def call(method: str, **params):
            ident = next(counter)
            socket.send(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                reply = json.loads(socket.recv())
                if reply.get("id") == ident:
                    return reply.get("result", {})

        time.sleep(args.wait)
        for _ in range(2):  # the second pass only closes what reopened; expanded buttons are marked
            print(call("Runtime.evaluate", expression=CLEAN_UP, returnByValue=True).get("result", {}).get("value"))
            time.sleep(2)
        shot = call("Page.captureScreenshot", format="png")
        with open(args.out, "wb") as handle:
            handle.write(base64.b64decode(shot["data"]))
    finally:
        browser.terminate()
        browser.wait(timeout=10)


if __name__ == "__main__":
    main()
