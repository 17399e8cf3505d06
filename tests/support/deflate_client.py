"""Echo through pawl with Python's `websockets` (Debian's python3-websockets),
which offers permessage-deflate by default: text and binary of 0 B, 125 B,
64 KiB and 1 MiB must come back as sent. Prints the negotiated extension and
one line per echo; exits non-zero on any mismatch.

usage: deflate_client.py ws://127.0.0.1:PORT/echo
"""
import asyncio
import random
import sys

import websockets


async def main(url):
    async with websockets.connect(url, max_size=None, compression="deflate") as ws:
        names = [getattr(e, "name", type(e).__name__) for e in ws.extensions]
        print("extensions:", ", ".join(names) or "none", flush=True)
        if "permessage-deflate" not in names:
            sys.exit("permessage-deflate was not negotiated")
        rng = random.Random(7)
        words = ["hello", "world", "pawl", '{"type":"message"}', "0123456789"]
        for size in (0, 125, 64 << 10, 1 << 20):
            text = ""
            while len(text) < size:
                text += rng.choice(words) + " "
            text = text[:size]
            binary = bytes(rng.randrange(0, 8) for _ in range(size))
            for sent in (text, binary):
                await ws.send(sent)
                got = await asyncio.wait_for(ws.recv(), 30)
                if got != sent:
                    sys.exit("mismatch at %d bytes (%s)" % (size, type(sent).__name__))
                print("echoed", type(sent).__name__, size, flush=True)


asyncio.run(main(sys.argv[1]))
