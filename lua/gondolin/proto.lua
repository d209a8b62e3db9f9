-- proto.lua - frame types of docs/protocol.md (mirrors csrc/proto/frame.h;
-- spec/unit/proto_spec.lua checks that the two agree).
return {
  VERSION = 1,
  CHUNK = 64 * 1024,
  MAX_PAYLOAD = 256 * 1024,
  EXEC_START = 0x01, EXEC_STDIN = 0x02, EXEC_STDIN_EOF = 0x03, EXEC_CREDIT = 0x04,
  EXEC_RESIZE = 0x05, EXEC_SIGNAL = 0x06, PING = 0x07, CLOCK_SET = 0x08,
  HELLO = 0x40, EXEC_STARTED = 0x41, EXEC_STDOUT = 0x42, EXEC_STDERR = 0x43,
  EXEC_STDIN_CREDIT = 0x44, EXEC_EXIT = 0x45, ERROR = 0x46, PONG = 0x47,
}
