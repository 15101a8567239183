import Testing

@testable import FastMCPAuth

@Suite struct Base64URLTests {
    @Test func roundTripsEveryLength() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text) == bytes)
        }
    }

    @Test func rfc4648Vectors() {
        // RFC 4648 §10, in the url alphabet without padding.
        let vectors = [
            "": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy",
        ]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(plain) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
    }

    @Test func refusesNonCanonicalForms() {
        #expect(Base64URL.decode("Zg==") == nil)  // padding
        #expect(Base64URL.decode("Zh") == nil)  // trailing bits set (Zg is canonical)
        #expect(Base64URL.decode("Zm9") == nil)  // trailing bits set (Zm8 is canonical)
        #expect(Base64URL.decode("Z") == nil)  // impossible length
        #expect(Base64URL.decode("+/8") == nil)  // standard alphabet
        #expect(Base64URL.decode("Zm 9v") == nil)  // whitespace
        #expect(Base64URL.decode("Zm9v\n") == nil)
    }
}
