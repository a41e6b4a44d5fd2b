"""The core protocol byte for byte: what nats-server answers to each input, and whether it keeps the connection.

Each row is (bytes sent, bytes expected back after INFO, connection state afterwards). The expected bytes were
read from nats-server 2.15; every row runs against both servers. A list sends its parts as separate TCP writes.
"""
from tests.core.wire import CLOSED, OPEN, run_table

C = b'CONNECT {"verbose":false}\r\n'

TABLE = [
    (b"FOO\r\n", b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"PING\r\n", b'PONG\r\n', OPEN),
    (b"ping\r\n", b'PONG\r\n', OPEN),
    (b"PINGxx\r\n", b'PONG\r\n', OPEN),
    (b"PING", b'', OPEN),
    (b"PONG\r\n", b'', OPEN),
    (b"CONNECT {}\r\nPING\r\n", b'+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nPING\r\n", b'+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {bad json}\r\nPING\r\n", b'', CLOSED),
    (b"CONNECT\r\nPING\r\n", b'', CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo\r\nPING\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo.. 1\r\nPING\r\n", b"+OK\r\n-ERR 'Invalid Subject'\r\nPONG\r\n", OPEN),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo bar baz 1\r\nPING\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo\r\nhi\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo x\r\nhi\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo 5\r\nhi\r\n", b'+OK\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo 2\r\nhiX\r\n", b"+OK\r\n-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo 2\r\nhi\n", b"+OK\r\n-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo 2000000\r\n", b"+OK\r\n-ERR 'Maximum Payload Violation'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo.. 2\r\nhi\r\nPING\r\n", b"+OK\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\nPONG\r\n", OPEN),
    (b"CONNECT {\"verbose\":true, \"pedantic\":true}\r\nPUB foo.* 2\r\nhi\r\nPING\r\n", b"+OK\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\nPONG\r\n", OPEN),
    (b"CONNECT {\"verbose\":false, \"pedantic\":false}\r\nPUB foo.* 2\r\nhi\r\nPING\r\n", b'PONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true, \"pedantic\":true}\r\nSUB foo..bar 1\r\nPING\r\n", b"+OK\r\n-ERR 'Invalid Subject'\r\nPONG\r\n", OPEN),
    (b"CONNECT {\"verbose\":false}\r\nSUB foo..bar 1\r\nPING\r\n", b"-ERR 'Invalid Subject'\r\nPONG\r\n", OPEN),
    (b"CONNECT {}\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"headers\":true}\r\nSUB foo 1\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", b'+OK\r\n+OK\r\n+OK\r\nHMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n', OPEN),
    (b"CONNECT {\"headers\":true}\r\nHPUB foo 14 12\r\nNATS/1.0\r\n\r\nhi\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"headers\":true}\r\nHPUB foo 12\r\nNATS/1.0\r\n\r\nhi\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"headers\":true}\r\nHPUB foo x 14\r\nNATS/1.0\r\n\r\nhi\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"no_responders\":true}\r\nPING\r\n", b"-ERR 'no responders requires headers support'\r\n", CLOSED),
    (b"CONNECT {\"no_responders\":true,\"headers\":true}\r\nSUB inbox 1\r\nPUB nobody inbox 2\r\nhi\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\nHMSG inbox 1 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"no_responders\":true,\"headers\":true}\r\nSUB inbox.* 1\r\nPUB nobody inbox.x 2\r\nhi\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\nHMSG inbox.x 1 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"protocol\":2}\r\nPING\r\n", b"-ERR 'invalid client protocol'\r\n", CLOSED),
    (b"CONNECT {\"protocol\":1}\r\nPING\r\n", b'+OK\r\nPONG\r\nINFO {...} \r\n', OPEN),
    (b"CONNECT {\"echo\":false}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\nSUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\n+OK\r\nMSG foo 1 1\r\na\r\n+OK\r\nMSG foo 1 1\r\nb\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\nUNSUB 99\r\nPING\r\n", b'+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nUNSUB\r\nPING\r\n", b"+OK\r\n-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nUNSUB 1 2 3\r\nPING\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {}\r\nMSG foo 1 2\r\nhi\r\nPING\r\n", b"+OK\r\n-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT {}\r\nHMSG foo 1 2\r\n\r\nPING\r\n", b'+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\nINFO {}\r\nPING\r\n", b'+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\nINFO garbage\r\nPING\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {}\r\n+OK\r\nPING\r\n", b'+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\n-ERR 'x'\r\nPING\r\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {}\r\nRS+ foo\r\n", b"+OK\r\n-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT {}\r\nSUB foo 1\r\nSUB foo 1\r\nPUB foo 1\r\nx\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\n+OK\r\nMSG foo 1 1\r\nx\r\nPONG\r\n', OPEN),
    (b"CONNECT {}\r\nPUB foo _R_.x 1\r\nx\r\nPING\r\n", b'+OK\r\n-ERR \'Permissions Violation for Publish with Reply of "_R_.x"\'\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo  bar   2\r\nhi\r\nPING\r\n", b'+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nPUB\tfoo\t2\r\nhi\r\nPING\r\n", b'+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo 2\nhi\r\nPING\n", b'+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nPUB foo -1\r\nhi\r\nPING\n", b'+OK\r\n', CLOSED),
    (b"CONNECT {\"verbose\":true}\r\nSUB .foo 1\r\nSUB foo. 2\r\nSUB f\x00o 3\r\nPING\r\n", b"+OK\r\n-ERR 'Invalid Subject'\r\n-ERR 'Invalid Subject'\r\n+OK\r\nPONG\r\n", OPEN),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo bar.baz 1\r\nSUB foo q* 2\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo _sys_ 1\r\nPING\r\n", b'+OK\r\n-ERR \'Permissions Violation for Subscription to "foo" using queue "_sys_"\'\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":false}\r\nSUB " + b"a"*5000 + b" 1\r\nPING\r\n", b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":false}\r\nSUB " + b"a"*4090 + b" 1\r\nPING\r\n", b'PONG\r\n', OPEN),
    ([b"CONNECT {\"verbose\":false}\r\nSUB ", b"a"*5000], b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    ([b"CONNECT {\"verbose\":false}\r\nSUB ", b"a"*4096], b'', OPEN),
    ([b"CONNECT {\"verbose\":false}\r\nSUB ", b"a"*4097], b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":false}\r\nPUB foo 1048577\r\n", b"-ERR 'Maximum Payload Violation'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":false}\r\nPUB foo 99999999999999999999999\r\n", b'', CLOSED),
    (b"CONNECT {\"verbose\":false}\r\nPUB foo 1234567890\r\n", b'', CLOSED),
    (b"CONNECT {\"verbose\":false}\r\nPUB foo 1048576\r\n", b'', OPEN),
    (b"CONNECT {\"verbose\":false}\r\nPUB foo 1048576\r\n" + b"x"*1048576 + b"\r\nPING\r\n", b'PONG\r\n', OPEN),
    (b"\x00\x01\x02", b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"GET / HTTP/1.1\r\n", b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT " + b"a"*5000, b"-ERR 'maximum control line exceeded'\r\n", CLOSED),
    (b"P" + b"I"*5000, b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"PING" + b"x"*5000, b'', OPEN),
    (b"PUB" + b" "*5000, b'', OPEN),
    (b"CONNECT {\"verbose\":false}\r\n" + b"PUB foo 3\r\nabc\r\n"*3 + b"PING\r\n", b'PONG\r\n', OPEN),
    ([b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPU", b"B foo", b" 3\r", b"\nab", b"c\r", b"\nPING", b"\r\n"], b'MSG foo 1 3\r\nabc\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo bar 3\r\nabc\r\nPING\r\n", b'MSG foo 1 bar 3\r\nabc\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo 0\r\n\r\nPING\r\n", b'MSG foo 1 0\r\n\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo 1\r\nHPUB foo 0 0\r\n\r\nPING\r\n", b'MSG foo 1 0\r\n\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo 1\r\nHPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\nPING\r\n", b'HMSG foo 1 r 12 12\r\nNATS/1.0\r\n\r\n\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB foo 1\r\nCONNECT {\"headers\":true}\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n", b'PONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":\"yes\"}\r\nPING\r\n", b'', CLOSED),
    (b"CONNECT {\"Verbose\":false}\r\nPING\r\n", b'PONG\r\n', OPEN),
    (b"CONNECT null\r\nPING\r\n", b'+OK\r\nPONG\r\n', OPEN),
    (b"CONNECT []\r\nPING\r\n", b'', CLOSED),
    (b"CONNECT {\"protocol\":1.5}\r\nPING\r\n", b'', CLOSED),
    (b"CONNECT {\"account\":\"x\"}\r\nPING\r\n", b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b"CONNECT{\"verbose\":false}\r\nPING\r\n", b'PONG\r\n', OPEN),
    (b"\r\n", b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
    (b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo $JS.ACK.x.y 1\r\nx\r\nPING\r\n", b'-ERR \'Permissions Violation for Publish with Reply of "$JS.ACK.x.y"\'\r\nPONG\r\n', OPEN),
]

# Runs of identical publishes (delivered in bulk), also when a payload looks like a message header.
RECORD = b"PUB foo 10\r\nPUB foo 1 \r\n"
TABLE += [
    (C + b"SUB foo 1\r\n" + RECORD * 5 + b"PING\r\n", b"MSG foo 1 10\r\nPUB foo 1 \r\n" * 5 + b"PONG\r\n", OPEN),
    (C + b"SUB foo 1\r\n" + b"PUB foo 3\r\nabc\r\n" * 4 + b"PUB foo 3\r\nabcd\r\n",
     b"MSG foo 1 3\r\nabc\r\n" * 4 + b"-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
]

# CONNECT as Go decodes it: invalid UTF-8 in a string is taken (as U+FFFD), numbers past int64 and a key given
# twice with a bad first value close the connection; a pedantic PUB with a bad subject and a bad payload end
# gets both errors, the subject's first.
TABLE += [
    (b'CONNECT {"verbose":true,"name":"\xff\xfe"}\r\nPING\r\n', b"+OK\r\nPONG\r\n", OPEN),
    (b'CONNECT {"verbose":true,"lang":"\\ud800"}\r\nPING\r\n', b"+OK\r\nPONG\r\n", OPEN),
    (b'CONNECT {"verbose":true,"protocol":9223372036854775808}\r\nPING\r\n', b"", CLOSED),
    (b'CONNECT {"verbose":true,"protocol":9223372036854775807}\r\nPING\r\n',
     b"-ERR 'invalid client protocol'\r\n", CLOSED),
    (b'CONNECT {"verbose":0,"verbose":true}\r\nPING\r\n', b"", CLOSED),
    (b'CONNECT {"verbose":true,"pedantic":true}\r\nPUB foo.* 0\r\n\x00\r\nPING\r\n',
     b"+OK\r\n-ERR 'Invalid Publish Subject'\r\n-ERR 'Unknown Protocol Operation'\r\n", CLOSED),
]

# Wildcard subscriptions catch other cases' messages: these run one at a time.
NO_PEDANTIC = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
ALONE = [
    (NO_PEDANTIC + b"SUB foo 1\r\nSUB * 2\r\n" + b"PUB foo 3\r\nabc\r\n" * 4 + b"PUB foo  3\r\nxyz\r\nPING\r\n",
     b"MSG foo 1 3\r\nabc\r\nMSG foo 2 3\r\nabc\r\n" * 4 + b"MSG foo 1 3\r\nxyz\r\nMSG foo 2 3\r\nxyz\r\nPONG\r\n",
     OPEN),
    (b"CONNECT {}\r\nSUB > 1\r\nSUB foo.> 2\r\nSUB *.* 3\r\nPUB foo.bar 1\r\nx\r\nPING\r\n", b'+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\nMSG foo.bar 1 1\r\nx\r\nMSG foo.bar 3 1\r\nx\r\nMSG foo.bar 2 1\r\nx\r\nPONG\r\n', OPEN),
    (b"CONNECT {\"verbose\":true}\r\nSUB foo.>.bar 1\r\nSUB foo* 2\r\nSUB >foo 3\r\nSUB * 4\r\nPING\r\n", b"+OK\r\n-ERR 'Invalid Subject'\r\n+OK\r\n+OK\r\n+OK\r\nPONG\r\n", OPEN),
]


def test_protocol_answers_match_nats_server(server):
    problems = run_table(server.port, TABLE)
    assert not problems, "\n".join(problems)


def test_wildcard_answers_match_nats_server(server):
    problems = [p for case in ALONE for p in run_table(server.port, [case])]
    assert not problems, "\n".join(problems)
