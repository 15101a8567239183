import Foundation
import Testing

@testable import FastMCPAuth

/// The Fernet spec vectors (Tests/vectors/fernet) and MultiFernet behaviour.
@Suite struct FernetTests {
    static func epoch(_ iso: String) -> Int64 {
        Int64(ISO8601DateFormatter().date(from: iso)!.timeIntervalSince1970)
    }

    @Test func generateVectors() throws {
        for vector in try loadVector("fernet/generate.json").arrayValue! {
            let fernet = try Fernet(key: vector["secret"]!.stringValue!)
            let iv = vector["iv"]!.arrayValue!.map { UInt8($0.numberValue!) }
            let token = try fernet.encrypt(
                Array(vector["src"]!.stringValue!.utf8),
                at: Self.epoch(vector["now"]!.stringValue!),
                iv: iv
            )
            #expect(token == vector["token"]!.stringValue!)
        }
    }

    @Test func verifyVectors() throws {
        for vector in try loadVector("fernet/verify.json").arrayValue! {
            let fernet = try Fernet(key: vector["secret"]!.stringValue!)
            let plaintext = try fernet.decrypt(
                vector["token"]!.stringValue!,
                ttl: Int64(vector["ttl_sec"]!.numberValue!),
                now: Self.epoch(vector["now"]!.stringValue!)
            )
            #expect(String(decoding: plaintext, as: UTF8.self) == vector["src"]!.stringValue!)
        }
    }

    /// Every invalid vector is refused, each with the code that names its fault.
    @Test func invalidVectors() throws {
        let expected: [String: ErrorCode] = [
            "incorrect mac": .badSignature, "too short": .malformedToken, "invalid base64": .malformedBase64,
            "payload size not multiple of block size": .malformedToken, "payload padding error": .decryptionFailed,
            "far-future TS (unacceptable clock skew)": .notYetValid, "expired TTL": .expired,
            "incorrect IV (causes padding error)": .decryptionFailed,
        ]
        let vectors = try loadVector("fernet/invalid.json").arrayValue!
        #expect(vectors.count == expected.count)
        for vector in vectors {
            let description = vector["desc"]!.stringValue!
            let fernet = try Fernet(key: vector["secret"]!.stringValue!)
            let code = outcome {
                try fernet.decrypt(
                    vector["token"]!.stringValue!,
                    ttl: Int64(vector["ttl_sec"]!.numberValue!),
                    now: Self.epoch(vector["now"]!.stringValue!)
                )
            }
            #expect(code == expected[description], "\(description): \(code)")
        }
    }

    @Test func roundTripsEverySizeAndRotates() throws {
        let old = try Fernet.generateKey()
        let new = try Fernet.generateKey()
        let before = try Fernet(keys: [old])
        let after = try Fernet(keys: [new, old])
        for size in [0, 1, 15, 16, 17, 1024, 65536] {
            let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let token = try before.encrypt(data, at: 1_000)
            #expect(try after.decrypt(token) == data)
            let rotated = try after.rotate(token)
            #expect(try after.extractTimestamp(rotated) == 1_000)
            #expect(outcome { try before.decrypt(rotated) } == .badSignature)  // now under the new key only
            #expect(try Fernet(key: new).decrypt(rotated) == data)
        }
    }

    @Test func ttlAndSkewEdges() throws {
        let fernet = try Fernet(key: try Fernet.generateKey())
        let token = try fernet.encrypt([1, 2, 3], at: 1_000)
        // timestamp + ttl == now: still valid
        #expect(outcome { try fernet.decrypt(token, ttl: 10, now: 1_010) } == .ok)
        #expect(outcome { try fernet.decrypt(token, ttl: 10, now: 1_011) } == .expired)
        #expect(outcome { try fernet.decrypt(token, ttl: 10, now: 940) } == .ok)  // 60 s skew allowed
        #expect(outcome { try fernet.decrypt(token, ttl: 10, now: 939) } == .notYetValid)
        #expect(outcome { try fernet.decrypt(token, now: 1) } == .ok)  // no TTL: no time check
    }

    @Test func badKeys() {
        for key in [
            "", "short", String(repeating: "A", count: 42) + "==",
            Base64.encode([UInt8](repeating: 1, count: 31), alphabet: .urlSafe),
            Base64.encode([UInt8](repeating: 1, count: 32), alphabet: .standard).replacingOccurrences(
                of: "A",
                with: "+"
            ),
        ] {
            #expect(outcome { try Fernet(key: key) } == .invalidKey, "\(key)")
        }
        #expect(outcome { try Fernet(keys: []) } == .invalidKey)
    }

    @Test func base64Forms() {
        #expect(Base64.encode(Array("any carnal pleas".utf8), alphabet: .standard) == "YW55IGNhcm5hbCBwbGVhcw==")
        #expect(Base64.decode("YW55IGNhcm5hbCBwbGVhcw==", alphabet: .standard) == Array("any carnal pleas".utf8))
        #expect(Base64.decode("YW55IGNhcm5hbCBwbGVhcw=", alphabet: .standard) == nil)
        #expect(Base64.decode("YW55IGNhcm5hbCBwbGVhcw", alphabet: .standard) == nil)
        #expect(Base64.encode([0xfb, 0xff], alphabet: .standard) == "+/8=")
        #expect(Base64.encode([0xfb, 0xff], alphabet: .urlSafe) == "-_8=")
        #expect(Base64.decode("-_8=", alphabet: .standard) == nil)
        #expect(Base64.decode("+/8=", alphabet: .urlSafe) == nil)
    }
}
