import Foundation
import Testing

@testable import FastMCPAuth

/// Every Wycheproof file in Tests/vectors/wycheproof through our JWS verify path, with JWS
/// rules applied on top of Wycheproof's verdicts:
///  - HMAC with a truncated tag: JWS requires the full-length MAC, so every such vector must be
///    rejected; HMAC keys shorter than the hash output are refused as weak (RFC 7518 §3.2).
///  - RSA-PSS with salt length 0 (the *_mgf1_0_* file): JWS fixes the salt length to the digest
///    length, so its "valid" vectors must be rejected, and its "s_len changed to 32" vector,
///    invalid for salt 0, is exactly a valid PS256 signature.
///  - "acceptable" vectors (legacy encodings) may go either way.
/// No vector type is skipped: each group either runs with Wycheproof's verdict or with the JWS rule.
@Suite struct WycheproofTests {
    struct Tally: CustomStringConvertible {
        var checked = 0, rejectedByJWSRule = 0
        var description: String { "\(checked) vectors checked, \(rejectedByJWSRule) rejected by a JWS rule" }
    }

    static let signatureFiles = [
        "ecdsa_secp256k1_sha256_p1363_test.json", "ecdsa_secp256r1_sha256_p1363_test.json",
        "ecdsa_secp384r1_sha384_p1363_test.json", "ecdsa_secp521r1_sha512_p1363_test.json",
        "ed25519_test.json", "ed448_test.json",
        "rsa_pss_2048_sha256_mgf1_0_test.json", "rsa_pss_2048_sha256_mgf1_32_test.json",
        "rsa_pss_2048_sha384_mgf1_48_test.json", "rsa_pss_3072_sha256_mgf1_32_test.json",
        "rsa_pss_4096_sha256_mgf1_32_test.json", "rsa_pss_4096_sha512_mgf1_64_test.json",
        "rsa_signature_2048_sha256_test.json", "rsa_signature_2048_sha384_test.json",
        "rsa_signature_2048_sha512_test.json", "rsa_signature_3072_sha256_test.json",
        "rsa_signature_4096_sha256_test.json",
    ]

    static let macFiles = ["hmac_sha256_test.json", "hmac_sha384_test.json", "hmac_sha512_test.json"]

    @Test func theVectorDirectoryHoldsExactlyTheseFiles() throws {
        let listed = try FileManagerListing.jsonFiles(in: vectorsDirectory + "/wycheproof")
        #expect(Set(listed) == Set(Self.signatureFiles + Self.macFiles))
    }

    static func algorithm(file: String, group: JSONValue) -> JWSAlgorithm {
        let sha = group["sha"]?.stringValue ?? ""
        let bits = sha == "SHA-384" ? 384 : sha == "SHA-512" ? 512 : 256
        if file.hasPrefix("ecdsa_secp256k1") { return .ES256K }
        if file.hasPrefix("ecdsa_secp256r1") { return .ES256 }
        if file.hasPrefix("ecdsa_secp384r1") { return .ES384 }
        if file.hasPrefix("ecdsa_secp521r1") { return .ES512 }
        if file.hasPrefix("ed") { return .EdDSA }
        if file.hasPrefix("rsa_pss") { return bits == 256 ? .PS256 : bits == 384 ? .PS384 : .PS512 }
        return bits == 256 ? .RS256 : bits == 384 ? .RS384 : .RS512
    }

    /// The group's public key as a JWK: Wycheproof's own JWK when given, else built from its fields.
    static func publicKey(file: String, group: JSONValue) throws -> JSONWebKey {
        if let jwk = group["publicKeyJwk"] ?? group["keyJwk"] {
            // Wycheproof's RSA JWKs say kid "none" and alg for PKCS#1; drop alg so the same key
            // object is judged by the vector's hash only.
            var object = jwk.objectValue!
            object["alg"] = nil
            return try JSONWebKey(jwk: .object(object))
        }
        let key = group["publicKey"]!
        if let modulus = key["modulus"]?.stringValue, let exponent = key["publicExponent"]?.stringValue {
            let n = Array(hexBytes(modulus).drop { $0 == 0 })
            let e = Array(hexBytes(exponent).drop { $0 == 0 })
            return try JSONWebKey(jwk: [
                "kty": "RSA", "n": .string(Base64URL.encode(n)), "e": .string(Base64URL.encode(e)),
            ])
        }
        let curve = key["curve"]!.stringValue!
        let jwkCurve = ["secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "secp256k1"][
            curve
        ]!
        let length = ECCurve(jwkName: jwkCurve)!.coordinateLength
        func coordinate(_ hex: String) -> [UInt8] {
            let bytes = Array(hexBytes(hex).drop { $0 == 0 })
            return [UInt8](repeating: 0, count: max(0, length - bytes.count)) + bytes
        }
        return try JSONWebKey(jwk: [
            "kty": "EC", "crv": .string(jwkCurve),
            "x": .string(Base64URL.encode(coordinate(key["wx"]!.stringValue!))),
            "y": .string(Base64URL.encode(coordinate(key["wy"]!.stringValue!))),
        ])
    }

    @Test(arguments: signatureFiles)
    func signatureVectors(file: String) throws {
        let document = try loadVector("wycheproof/" + file)
        var tally = Tally()
        let saltZero = file.contains("_mgf1_0_")
        for group in document["testGroups"]!.arrayValue! {
            let alg = Self.algorithm(file: file, group: group)
            let key: JSONWebKey
            do {
                key = try Self.publicKey(file: file, group: group)
            } catch {
                // A key we refuse to load must not have any valid vector.
                let valid = group["tests"]!.arrayValue!.filter { $0["result"]?.stringValue == "valid" }
                #expect(valid.isEmpty, "\(file): a group with valid vectors has a key we refuse: \(error)")
                continue
            }
            for test in group["tests"]!.arrayValue! {
                let id = test["tcId"]!.numberValue!
                let result = test["result"]!.stringValue!
                let accepted = try key.verify(
                    alg,
                    input: hexBytes(test["msg"]!.stringValue!),
                    signature: hexBytes(test["sig"]!.stringValue!)
                )
                tally.checked += 1
                if saltZero {
                    // Here the one signature with the JWS salt length (the digest length) is the
                    // vector Wycheproof made by changing s_len to it; every other must fail.
                    let jwsForm = test["comment"]?.stringValue == "s_len changed to \(alg.digestLength)"
                    #expect(
                        accepted == jwsForm,
                        "\(file) #\(id): only salt length \(alg.digestLength) verifies as \(alg.rawValue)"
                    )
                    if result == "valid" { tally.rejectedByJWSRule += 1 }
                } else if result == "valid" {
                    #expect(accepted, "\(file) #\(id) (\(test["comment"]?.stringValue ?? "")) should verify")
                } else if result == "invalid" {
                    #expect(!accepted, "\(file) #\(id) (\(test["comment"]?.stringValue ?? "")) must not verify")
                }
            }
        }
        #expect(tally.checked == Int(document["numberOfTests"]?.numberValue ?? Double(tally.checked)))
        #expect(tally.checked > 50)
    }

    @Test(arguments: macFiles)
    func macVectors(file: String) throws {
        let document = try loadVector("wycheproof/" + file)
        let alg: JWSAlgorithm = file.contains("256") ? .HS256 : file.contains("384") ? .HS384 : .HS512
        var tally = Tally()
        for group in document["testGroups"]!.arrayValue! {
            let keyBits = Int(group["keySize"]!.numberValue!)
            let tagBits = Int(group["tagSize"]!.numberValue!)
            for test in group["tests"]!.arrayValue! {
                let id = test["tcId"]!.numberValue!
                let key = try JSONWebKey(sharedSecret: hexBytes(test["key"]!.stringValue!))
                let msg = hexBytes(test["msg"]!.stringValue!)
                let tag = hexBytes(test["tag"]!.stringValue!)
                tally.checked += 1
                if keyBits < alg.digestLength * 8 {
                    #expect(
                        outcome { try key.verify(alg, input: msg, signature: tag) } == .weakKey,
                        "\(file) #\(id): short key must be refused"
                    )
                    tally.rejectedByJWSRule += 1
                    continue
                }
                let accepted = try key.verify(alg, input: msg, signature: tag)
                if tagBits < alg.digestLength * 8 {
                    #expect(!accepted, "\(file) #\(id): a truncated MAC is never a JWS signature")
                    tally.rejectedByJWSRule += 1
                } else if test["result"]!.stringValue! == "valid" {
                    #expect(accepted, "\(file) #\(id) should verify")
                } else {
                    #expect(!accepted, "\(file) #\(id) must not verify")
                }
            }
        }
        #expect(tally.checked == 174)
        #expect(tally.rejectedByJWSRule < tally.checked)
    }
}

enum FileManagerListing {
    static func jsonFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
    }
}
