import COpenSSL
import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

@Suite struct VerifierConfigTests {
    @Test func exactlyOneKeySource() {
        #expect(outcome { try JWTVerifier(json: [:]) } == .invalidConfig)
        #expect(
            outcome { try JWTVerifier(json: ["jwks_uri": "https://a.example/j", "jwks": ["keys": []]]) }
                == .invalidConfig
        )
        #expect(outcome { try JWTVerifier(json: "not an object") } == .invalidConfig)
    }

    @Test func algorithmSelection() throws {
        let uri: JSONValue = "https://idp.example/jwks"
        #expect(try JWTVerifier(json: ["jwks_uri": uri]).config.algorithms == [.RS256])  // FastMCP's default
        #expect(try JWTVerifier(json: ["jwks_uri": uri, "algorithm": "ES256"]).config.algorithms == [.ES256])
        #expect(
            try JWTVerifier(json: ["jwks_uri": uri, "algorithms": "ES256, PS256"]).config.algorithms == [
                .ES256, .PS256,
            ]
        )
        #expect(try JWTVerifier(json: ["jwks_uri": uri, "algorithms": #"["EdDSA"]"#]).config.algorithms == [.EdDSA])
        #expect(
            outcome { try JWTVerifier(json: ["jwks_uri": uri, "algorithm": "ES256", "algorithms": ["ES256"]]) }
                == .invalidConfig
        )
        #expect(outcome { try JWTVerifier(json: ["jwks_uri": uri, "algorithms": ["none"]]) } == .invalidConfig)
        #expect(outcome { try JWTVerifier(json: ["jwks_uri": uri, "algorithms": []]) } == .invalidConfig)
    }

    @Test func badValuesNameTheirKey() {
        let cases: [(String, JSONValue)] = [
            ("leeway", -1), ("leeway", "soon"), ("cache_size", -5), ("max_token_bytes", .double(1.5)),
            ("issuer", 7), ("required_scopes", ["a", 1]), ("require_exp", "yes"), ("spelled_wrong", 1),
        ]
        for (key, value) in cases {
            do {
                _ = try JWTVerifier(json: .object(["jwks_uri": "https://idp.example/jwks", key: value]))
                Issue.record("\(key)=\(value) was accepted")
            } catch let error as AuthError {
                #expect(error.code == .invalidConfig && error.message.contains(key), "\(key): \(error)")
            } catch { Issue.record("\(error)") }
        }
    }

    @Test func listsAcceptJSONCommasOrSpaces() throws {
        #expect(try ConfigReader.splitList(#"["a","b"]"#, key: "k") == ["a", "b"])
        #expect(try ConfigReader.splitList("a,b", key: "k") == ["a", "b"])
        #expect(try ConfigReader.splitList("a b", key: "k") == ["a", "b"])
        #expect(try ConfigReader.splitList(" a, b ", key: "k") == ["a", "b"])
        #expect(outcome { try ConfigReader.splitList("[1]", key: "k") } == .invalidConfig)
    }

    @Test func staticJWKSAsTextOrObjectAndSecrets() throws {
        let key = try JSONWebKey.generate(.EdDSA)
        let document: JSONValue = ["keys": [try key.publicJWK()]]
        let token = try JWT.sign(claims: ["sub": "a", "exp": 4_000_000_000], key: key, algorithm: .EdDSA)
        for jwks in [document, .string(document.serialized())] {
            #expect(try JWTVerifier(json: ["jwks": jwks, "algorithms": ["EdDSA"]]).verify(token).subject == "a")
        }
        // FastMCP passes an HS secret as public_key.
        let secret = String(repeating: "s", count: 64)
        let hsToken = try JWT.sign(
            claims: ["sub": "b", "exp": 4_000_000_000],
            key: try JSONWebKey(sharedSecret: Array(secret.utf8)),
            algorithm: .HS512
        )
        #expect(
            try JWTVerifier(json: ["public_key": .string(secret), "algorithm": "HS512"]).verify(hsToken).subject == "b"
        )
    }
}

@Suite struct PEMTests {
    static let rsa = try! JSONWebKey.generate(.RS256)

    @Test func spkiFromWycheproofAndPKCS1() throws {
        let group = try loadVector("wycheproof/ecdsa_secp256r1_sha256_p1363_test.json")["testGroups"]!.arrayValue![0]
        let key = try JSONWebKey.parse(pem: group["publicKeyPem"]!.stringValue!)
        #expect(key.keyType == .ec(curve: "P-256"))
        #expect(try key.publicJWK()["x"] == group["publicKeyJwk"]!["x"])
        let ed = try loadVector("wycheproof/ed448_test.json")["testGroups"]!.arrayValue![0]
        #expect(try JSONWebKey.parse(pem: ed["publicKeyPem"]!.stringValue!).keyType == .okp(curve: "Ed448"))
        // PKCS#1 "RSA PUBLIC KEY" of our own key: same modulus as the SPKI form.
        let pkcs1 = try pem(Self.rsa) { PEM_write_bio_RSAPublicKey_fromEVP($0, $1) }
        #expect(pkcs1.contains("BEGIN RSA PUBLIC KEY"))
        #expect(try JSONWebKey.parse(pem: pkcs1).publicJWK()["n"] == Self.rsa.publicJWK()["n"])
        #expect(try JSONWebKey.parse(pem: try rsaPublicPEM(Self.rsa)).publicJWK()["n"] == Self.rsa.publicJWK()["n"])
    }

    @Test func pemVerifierAndGarbage() throws {
        let token = try JWT.sign(claims: ["sub": "p", "exp": 4_000_000_000], key: Self.rsa, algorithm: .RS256)
        let verifier = try JWTVerifier(json: ["public_key": .string(try rsaPublicPEM(Self.rsa))])
        #expect(try verifier.verify(token).subject == "p")
        #expect(
            outcome { try JSONWebKey.parse(pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n") }
                == .invalidKey
        )
        #expect(outcome { try JWTVerifier(json: ["public_key": "not a pem"]) } == .invalidConfig)
        #expect(outcome { try JSONWebKey.parse(pem: "") } == .invalidKey)
        #expect(outcome { try JSONWebKey.parse(pem: "BEGIN PUBLIC KEY-----") } == .invalidKey)
        // Text before the BEGIN line is skipped, as OpenSSL's reader does.
        let prefixed = "issuer key:\n" + (try rsaPublicPEM(Self.rsa))
        #expect(try JSONWebKey.parse(pem: prefixed).publicJWK()["n"] == Self.rsa.publicJWK()["n"])
    }
}

/// PEM_write_bio_RSAPublicKey needs an RSA*; go through the EVP encoder for PKCS#1 instead.
func PEM_write_bio_RSAPublicKey_fromEVP(_ bio: OpaquePointer, _ pkey: OpaquePointer) -> Int32 {
    guard let encoder = OSSL_ENCODER_CTX_new_for_pkey(pkey, fma_evp_selection_public_key(), "PEM", "type-specific", nil)
    else { return 0 }
    defer { OSSL_ENCODER_CTX_free(encoder) }
    return OSSL_ENCODER_to_bio(encoder, bio)
}

func pem(_ key: JSONWebKey, _ write: (OpaquePointer, OpaquePointer) -> Int32) throws -> String {
    let bio = BIO_new(BIO_s_mem())!
    defer { BIO_free(bio) }
    #expect(write(bio, key.pkey!) == 1)
    var pointer: UnsafeMutablePointer<CChar>? = nil
    let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
}

@Suite struct VerifiedTokenCacheTests {
    static let key = try! JSONWebKey.generate(.ES256)

    @Test func servesWithinLifetimeAndNeverPastExp() throws {
        let clock = TestClock(1_800_000_000)
        let verifier = try JWTVerifier(
            json: [
                "jwks": ["keys": [try Self.key.publicJWK()]], "algorithms": ["ES256"], "cache_size": 4, "cache_ttl": 60,
            ],
            clock: clock.function
        )
        let token = try JWT.sign(
            claims: ["sub": "a", "exp": .int(1_800_000_030), "scope": "read"],
            key: Self.key,
            algorithm: .ES256
        )
        #expect(try verifier.verify(token).subject == "a")
        #expect(try verifier.verify(token).subject == "a")
        // per-call scopes still apply
        #expect(outcome { try verifier.verify(token, requiredScopes: ["write"]) } == .insufficientScope)
        clock.advance(30)
        #expect(outcome { try verifier.verify(token) } == .expired)
    }

    @Test func entriesAgeOutAndTheTableIsBounded() {
        let cache = VerifiedTokenCache(capacity: 3, maxLifetime: 60)
        let token = AccessToken(token: "t", claims: ["sub": "a"])
        cache.store([1], token, now: 0, expiresBy: nil)
        #expect(cache.lookup([1], now: 59) != nil)
        #expect(cache.lookup([1], now: 60) == nil)
        cache.store([2], token, now: 100, expiresBy: 110)
        #expect(cache.lookup([2], now: 109) != nil && cache.lookup([2], now: 110) == nil)
        for index in 0..<10 { cache.store([UInt8(index + 10)], token, now: 200, expiresBy: nil) }
        let live = (0..<10).filter { cache.lookup([UInt8($0 + 10)], now: 201) != nil }
        #expect(live.count == 3)
        cache.store([3], token, now: 300, expiresBy: 250)  // already past exp: not stored
        #expect(cache.lookup([3], now: 300) == nil)
    }
}

@Suite struct ConcurrencyTests {
    /// 8 threads verify valid, tampered and expired tokens against one verifier (cache on).
    @Test(arguments: [0, 100])
    func eightThreadsOneVerifier(cacheSize: Int64) throws {
        let key = try JSONWebKey.generate(.PS256)
        let verifier = try JWTVerifier(json: [
            "jwks": ["keys": [try key.publicJWK()]], "algorithms": ["PS256"], "cache_size": .int(cacheSize),
        ])
        let good = (0..<4).map {
            try! JWT.sign(claims: ["sub": .string("user\($0)"), "exp": 4_000_000_000], key: key, algorithm: .PS256)
        }
        let expired = try JWT.sign(claims: ["sub": "old", "exp": 1_000], key: key, algorithm: .PS256)
        let wrong = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for round in 0..<40 {
                let index = (thread + round) % 4
                if (try? verifier.verify(good[index]).subject) != "user\(index)" { wrong.withLock { $0 += 1 } }
                if outcome({ try verifier.verify(good[index].dropLast(3) + "AAA") }) != .badSignature {
                    wrong.withLock { $0 += 1 }
                }
                if outcome({ try verifier.verify(expired) }) != .expired { wrong.withLock { $0 += 1 } }
            }
        }
        #expect(wrong.withLock { $0 } == 0)
    }
}
