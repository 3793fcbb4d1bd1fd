import Testing
@testable import TraceFormat

/// The bytes lines of text are written in: numbers at their edges, and text from a bundle that must not
/// pass for another field or reach a terminal raw.
struct TextLineTests {
    @Test("numbers are written as String would write them, at the edges of their range",
          arguments: [0, 1, 9, 10, 15, 16, 255, 4096, 1 << 63, UInt64.max] as [UInt64])
    func numbers(v: UInt64) {
        var line = TextLine()
        line.decimal(v)
        line.byte(UInt8(ascii: " "))
        line.hex(v)
        line.byte(UInt8(ascii: " "))
        line.signed(Int64(bitPattern: v))
        #expect(line.string == "\(v) 0x\(String(v, radix: 16)) \(Int64(bitPattern: v))")
    }

    @Test("bytes are pairs of hex digits, and none is a dash")
    func bytes() {
        var line = TextLine()
        line.hexBytes([0x00, 0x0f, 0xa0, 0xff])
        line.byte(UInt8(ascii: " "))
        line.hexBytes([])
        #expect(line.string == "000fa0ff -")
    }

    @Test("text is written as it is only when it is printable ASCII with nothing that could end or fake a field",
          arguments: [
              ("guest", "guest"), ("", #""""#), ("my vm", #""my vm""#), (#"a"b"#, #""a\"b""#), ("k=v", #""k=v""#),
              (#"a\b"#, #""a\\b""#), ("evil\u{1B}]0;x\u{07}", #""evil\u{1B}]0;x\u{7}""#), ("café", #""café""#),
          ])
    func text(input: String, expected: String) {
        var line = TextLine()
        line.text(input)
        #expect(line.string == expected)
    }
}
