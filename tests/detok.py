# tests/detok.py GGUF ID...: the bytes of tokens ID... of a byte-level BPE GGUF vocabulary (control tokens as
# their text), written independently of src/ (GPT-2's byte-to-unicode mapping, inverted), for tests/t_cli.sh.
import struct, sys
b = open(sys.argv[1], 'rb').read()
o = 4
def r(fmt):
    global o
    v = struct.unpack_from('<' + fmt, b, o); o += struct.calcsize('<' + fmt); return v[0]
def s():
    global o
    n = r('Q'); v = b[o:o + n]; o += n; return v
sz = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: 'B', 10: 'Q', 11: 'q', 12: 'd'}
def skip(t):
    if t == 8: s(); return
    if t == 9:
        et = r('I'); n = r('Q')
        for _ in range(n): skip(et)
        return
    r(sz[t])
r('I'); r('Q'); nk = r('Q')
tokens = types = None
for _ in range(nk):
    k = s(); t = r('I')
    if k in (b'tokenizer.ggml.tokens', b'tokenizer.ggml.token_type'):
        et = r('I'); n = r('Q')
        vals = [s() if et == 8 else r(sz[et]) for _ in range(n)]
        if k == b'tokenizer.ggml.tokens': tokens = vals
        else: types = vals
    else:
        skip(t)
# GPT-2's byte-to-unicode mapping, inverted
printable = list(range(0x21, 0x7f)) + list(range(0xa1, 0xad)) + list(range(0xae, 0x100))
inv, extra = {}, 0
for byte in range(256):
    if byte in printable: inv[chr(byte)] = byte
    else: inv[chr(0x100 + extra)] = byte; extra += 1
out = bytearray()
for i in map(int, sys.argv[2:]):
    text = tokens[i].decode('utf-8')
    out += text.encode() if types[i] == 3 else bytes(inv[c] for c in text)
sys.stdout.buffer.write(bytes(out))
