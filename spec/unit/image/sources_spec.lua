-- image/sources.lua: the host's apt sources, both formats.
local sources = require "gondolin.image.sources"
local files = require "gondolin.files"

describe("apt sources", function()
  it("reads one-line entries with options and comments", function()
    local e = sources.parse_list([[
# a comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://deb.example.test/debian bookworm main contrib # trailing
deb-src http://deb.example.test/debian bookworm main
   deb http://deb.example.test/debian bookworm-updates main
#deb http://old.example.test/debian bookworm main
not a source line
]])
    assert.same({ "deb http://deb.example.test/debian bookworm main contrib",
                  "deb http://deb.example.test/debian bookworm-updates main" }, sources.lines_for(e, "bookworm"))
  end)

  it("reads deb822 paragraphs with several values and continuation lines", function()
    local e = assert(sources.parse_deb822([[
Types: deb deb-src
URIs: http://a.test/debian
  http://b.test/debian
Suites: bookworm bookworm-security
Components: main
# comment inside

Types: deb
Enabled: no
URIs: http://disabled.test
Suites: bookworm
Components: main

Types: deb
URIs: http://other.test
Suites: cloud-sdk-bookworm nodistro
Components: main
]]))
    assert.same({ "deb http://a.test/debian bookworm main", "deb http://a.test/debian bookworm-security main",
                  "deb http://b.test/debian bookworm main", "deb http://b.test/debian bookworm-security main" },
      sources.lines_for(e, "bookworm"))
  end)

  it("reads a whole apt directory and says when a suite has no entry", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(files.mkdir_p(dir .. "/sources.list.d"))
    assert(files.write_atomic(dir .. "/sources.list", "deb http://x.test/debian trixie main\n"))
    assert(files.write_atomic(dir .. "/sources.list.d/extra.sources",
      "Types: deb\nURIs: http://y.test/debian\nSuites: trixie-updates\nComponents: main\n"))
    assert(files.write_atomic(dir .. "/sources.list.d/ignored.txt", "deb http://z.test trixie main\n"))
    assert.same({ "deb http://x.test/debian trixie main", "deb http://y.test/debian trixie-updates main" },
      sources.host("trixie", dir))
    local none, err = sources.host("bookworm", dir)
    assert.is_nil(none)
    assert.matches("no entry for suite 'bookworm'; set 'mirror'", err)
    files.rm_tree(dir)
  end)
end)
