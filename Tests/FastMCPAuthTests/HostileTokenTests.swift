import COpenSSL
import Testing

@testable import FastMCPAuth

/// Hostile and malformed tokens, each asserting its specific code. Keys are generated per run;
/// the clock is injected, so time edges are exact.
@Suite struct HostileTokenTests {
    static let now: Double = 1_800_000_000
    let clock = TestClock(HostileTokenTests.now)
    // Generated once per run (RSA generation is slow) and shared by every test.
    static let keys = (
        es256: try! JSONWebKey.generate(.ES256, keyID: "ec-1"),
        rs256: try! JSONWebKey.generate(.RS256, keyID: "rsa-1"),
        attacker: try! JSONWebKey.generate(.ES256, keyID: "attacker")
    )
    var es256: JSONWebKey { Self.keys.es256 }
    var rs256: JSONWebKey { Self.keys.rs256 }
    var attacker: JSONWebKey { Self.keys.attacker }
    let secret = Array("0123456789abcdef0123456789abcdef".utf8)

    var claims: String {
        #"{"sub":"alice","iss":"https://issuer.example","aud":"mcp","exp":\#(Int(Self.now) + 300),"scope":"read"}"#
    }

    func verifier(
        _ extra: [String: JSONValue] = [:],
        algorithms: [JSONValue] = ["ES256", "RS256"]
    ) throws -> JWTVerifier {
        var config: [String: JSONValue] = [
            "jwks": ["keys": [try es256.publicJWK(), try rs256.publicJWK()]],
            "algorithms": .array(algorithms), "issuer": "https://issuer.example", "audience": "mcp", "cache_size": 0,
        ]
        config.merge(extra) { _, new in new }
        return try JWTVerifier(json: .object(config), clock: clock.function)
    }

    func hsVerifier() throws -> JWTVerifier {
        try JWTVerifier(
            json: [
                "public_key": .string(String(decoding: secret, as: UTF8.self)), "algorithms": ["HS256"],
                "cache_size": 0,
            ],
            clock: clock.function
        )
    }

    func es(_ header: String? = nil, _ claims: String? = nil, key: JSONWebKey? = nil) throws -> String {
        try rawToken(header: header ?? #"{"alg":"ES256","kid":"ec-1"}"#, claims: claims ?? self.claims) {
            try (key ?? es256).sign(.ES256, input: $0)
        }
    }

    func check(
        _ token: String,
        _ expected: ErrorCode,
        _ verifier: JWTVerifier? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let v = try verifier ?? self.verifier()
        #expect(outcome { try v.verify(token) } == expected, sourceLocation: sourceLocation)
    }

    @Test func baselineVerifies() throws { try check(try es(), .ok) }

    // MARK: alg none and confusion

    @Test(arguments: ["none", "None", "NONE", "nOnE"])
    func algNoneInAnyCase(spelling: String) throws {
        let unsigned = Base64URL.encode(#"{"alg":"\#(spelling)"}"#) + "." + Base64URL.encode(claims) + "."
        try check(unsigned, .algNotAllowed)
        try check(unsigned, .algNotAllowed, try hsVerifier())
    }

    @Test func hsSignedWithThePublicKeyPEMIsRefused() throws {
        // The classic confusion: HS256 keyed with the bytes of the RSA public key.
        let pem = try rsaPublicPEM(rs256)
        let forged = try rawToken(header: #"{"alg":"HS256"}"#, claims: claims) {
            try JSONWebKey(sharedSecret: Array(pem.utf8)).sign(.HS256, input: $0)
        }
        let pemVerifier = try JWTVerifier(
            json: ["public_key": .string(pem), "algorithms": ["RS256"], "cache_size": 0],
            clock: clock.function
        )
        try check(forged, .algNotAllowed, pemVerifier)
        // Allowing HS256 next to a PEM key is a configuration error, not a runtime hole.
        #expect(
            outcome { try JWTVerifier(json: ["public_key": .string(pem), "algorithms": ["RS256", "HS256"]]) }
                == .invalidConfig
        )
        #expect(
            outcome { try JWTVerifier(json: ["public_key": .string(pem), "algorithms": ["HS256"]]) } == .invalidConfig
        )
        // And a JWKS of asymmetric keys never yields an HS key.
        try check(forged, .keyNotFound, try verifier(algorithms: ["HS256"]))
    }

    @Test func hsWithRemoteJWKSIsAConfigurationError() {
        #expect(
            outcome { try JWTVerifier(json: ["jwks_uri": "https://idp.example/jwks", "algorithms": ["HS256"]]) }
                == .invalidConfig
        )
    }

    @Test func algOutsideTheAllowListOrUnknown() throws {
        let es384 = try JSONWebKey.generate(.ES384)
        try check(
            try rawToken(header: #"{"alg":"ES384"}"#, claims: claims) { try es384.sign(.ES384, input: $0) },
            .algNotAllowed
        )
        try check(try es(#"{"alg":"HS1","kid":"ec-1"}"#), .algNotAllowed)
        try check(try es(#"{"alg":"es256","kid":"ec-1"}"#), .algNotAllowed)  // names are case-sensitive
        try check(try es(#"{"alg":256,"kid":"ec-1"}"#), .malformedHeader)
        try check(try es(#"{"kid":"ec-1"}"#), .malformedHeader)
    }

    // MARK: key selection

    @Test func kidPointingAtAnotherKeyType() throws {
        try check(try es(#"{"alg":"ES256","kid":"rsa-1"}"#), .keyTypeMismatch)
        let rsaToken = try rawToken(header: #"{"alg":"RS256","kid":"ec-1"}"#, claims: claims) {
            try rs256.sign(.RS256, input: $0)
        }
        try check(rsaToken, .keyTypeMismatch)
    }

    @Test func unknownKidAndKidOfTheWrongType() throws {
        try check(try es(#"{"alg":"ES256","kid":"nobody"}"#), .keyNotFound)
        try check(try es(#"{"alg":"ES256","kid":17}"#), .malformedHeader)
    }

    @Test func keyUseKeyOpsAndAlgAreHonoured() throws {
        for restriction: [String: JSONValue] in [["use": "enc"], ["key_ops": ["encrypt"]], ["alg": "ES384"]] {
            var jwk = try es256.publicJWK().objectValue!
            jwk.merge(restriction) { _, new in new }
            let v = try JWTVerifier(
                json: ["jwks": ["keys": [.object(jwk)]], "algorithms": ["ES256"], "cache_size": 0],
                clock: clock.function
            )
            try check(try es(), .keyTypeMismatch, v)
        }
    }

    @Test(arguments: ["jku", "x5u", "jwk", "x5c"])
    func headerKeyReferencesAreNeverTrusted(parameter: String) throws {
        let values: [String: String] = [
            "jku": #""https://attacker.example/jwks""#, "x5u": #""https://attacker.example/cert""#,
            "jwk": try attacker.publicJWK().serialized(), "x5c": #"["MIIB"]"#,
        ]
        // Signed by the attacker's key, which the header offers: must not verify.
        try check(
            try es(#"{"alg":"ES256",""# + parameter + #"":"# + values[parameter]! + "}", key: attacker),
            .badSignature
        )
        try check(
            try es(
                #"{"alg":"ES256","kid":"attacker",""# + parameter + #"":"# + values[parameter]! + "}",
                key: attacker
            ),
            .keyNotFound
        )
    }

    // MARK: signature forms

    @Test func ecdsaSignatureForms() throws {
        let token = try es()
        let parts = token.split(separator: ".").map(String.init)
        let raw = Base64URL.decode(parts[2])!
        let der = OpenSSL.derSignature(fromRawSignature: raw, coordinateLength: 32)!
        try check(parts[0] + "." + parts[1] + "." + Base64URL.encode(der), .badSignature)  // DER form
        // r = s = 0
        try check(parts[0] + "." + parts[1] + "." + Base64URL.encode([UInt8](repeating: 0, count: 64)), .badSignature)
        try check(
            parts[0] + "." + parts[1] + "." + Base64URL.encode([UInt8](repeating: 0xFF, count: 64)),
            .badSignature
        )  // r, s >= n
        try check(parts[0] + "." + parts[1] + "." + Base64URL.encode(Array(raw.dropLast())), .badSignature)  // short
        try check(parts[0] + "." + parts[1] + "." + Base64URL.encode(raw + [0]), .badSignature)  // long
        try check(
            parts[0] + "." + parts[1] + "." + Base64URL.encode([0] + raw.prefix(32) + [0] + raw.suffix(32)),
            .badSignature
        )  // padded r, s
        try check(parts[0] + "." + parts[1] + ".", .badSignature)  // empty
    }

    @Test(arguments: [0, 20, 64])
    func pssWithAnotherSaltLengthIsRefused(saltLength: Int32) throws {
        let ps = try JSONWebKey.generate(.PS256, keyID: "ps")
        let v = try JWTVerifier(
            json: ["jwks": ["keys": [try ps.publicJWK()]], "algorithms": ["PS256"], "cache_size": 0],
            clock: clock.function
        )
        let header = #"{"alg":"PS256","kid":"ps"}"#
        let good = try rawToken(header: header, claims: claims) { try ps.sign(.PS256, input: $0) }
        try check(good, .ok, v)
        let odd = try rawToken(header: header, claims: claims) { try pssSign(ps, input: $0, saltLength: saltLength) }
        try check(odd, .badSignature, v)
    }

    @Test func truncatedOrEmptyMACIsRefused() throws {
        let key = try JSONWebKey(sharedSecret: secret)
        let good = try rawToken(header: #"{"alg":"HS256"}"#, claims: claims) { try key.sign(.HS256, input: $0) }
        try check(good, .ok, try hsVerifier())
        let parts = good.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let mac = Base64URL.decode(parts[2])!
        try check(parts[0] + "." + parts[1] + "." + Base64URL.encode(mac.prefix(16)), .badSignature, try hsVerifier())
        try check(parts[0] + "." + parts[1] + ".", .badSignature, try hsVerifier())
    }

    // MARK: encoding and structure

    @Test func paddedNonCanonicalAndForeignBase64() throws {
        let token = try es()
        let parts = token.split(separator: ".").map(String.init)
        try check(parts[0] + "=." + parts[1] + "." + parts[2], .malformedBase64)
        try check(parts[0] + "." + parts[1] + "." + parts[2] + "==", .malformedBase64)
        // 64-byte signature = 86 chars, whose last char carries 4 unused bits: set one.
        var tail = Array(parts[2].utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let index = alphabet.firstIndex(of: tail[tail.count - 1])!
        tail[tail.count - 1] = alphabet[index | 1 == index ? index ^ 1 : index | 1]
        try check(parts[0] + "." + parts[1] + "." + String(decoding: tail, as: UTF8.self), .malformedBase64)
        try check(
            parts[0].replacingOccurrences(of: "-", with: "+") + "+." + parts[1] + "." + parts[2],
            .malformedBase64
        )
        try check(parts[0] + ". " + parts[1] + "." + parts[2], .malformedBase64)
        try check(parts[0] + "." + parts[1] + "." + parts[2] + "\n", .malformedBase64)
    }

    @Test func structure() throws {
        let token = try es()
        try check("", .malformedToken)
        try check("abc", .malformedToken)
        try check(token.split(separator: ".").prefix(2).joined(separator: "."), .malformedToken)
        try check(token + ".AAAA", .malformedToken)
        try check(token + ".AAAA.BBBB", .malformedToken)  // JWE-shaped
        try check(String(repeating: "a", count: 16 * 1024 + 1), .tooLarge)
        let huge = try es(
            #"{"alg":"ES256","kid":"ec-1"}"#,
            #"{"pad":""# + String(repeating: "x", count: 17000) + #""}"#
        )
        try check(huge, .tooLarge)
    }

    @Test func duplicateMembersAndNonObjects() throws {
        let exp = Int(Self.now) + 300
        try check(try es(#"{"alg":"ES256","kid":"ec-1","alg":"ES256"}"#), .malformedHeader)
        try check(try es(#"["ES256"]"#), .malformedHeader)
        try check(try es(#"{"alg":"ES256","kid":"ec-1""#), .malformedHeader)
        try check(
            try es(
                nil,
                #"{"sub":"alice","exp":\#(exp),"exp":\#(exp + 9999),"iss":"https://issuer.example","aud":"mcp"}"#
            ),
            .malformedClaims
        )
        try check(try es(nil, #"["alice"]"#), .malformedClaims)
        try check(try es(nil, #"{"sub":"alice""#), .malformedClaims)
        try check(try es(nil, ""), .malformedClaims)
    }

    // MARK: crit

    @Test func critVariants() throws {
        let understood = try verifier(["understood_crit": ["exp-policy"]])
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":["exp-policy"],"exp-policy":1}"#), .unsupportedCrit)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":["exp-policy"],"exp-policy":1}"#), .ok, understood)
        // listed, absent
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":["exp-policy"]}"#), .malformedHeader, understood)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":[]}"#), .malformedHeader)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":"exp-policy"}"#), .malformedHeader)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":["alg"]}"#), .malformedHeader)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","crit":["b64"],"b64":false}"#), .unsupportedCrit)
        try check(
            try es(#"{"alg":"ES256","kid":"ec-1","crit":["exp-policy","exp-policy"],"exp-policy":1}"#),
            .malformedHeader,
            understood
        )
    }

    // MARK: claims of the wrong type

    @Test(arguments: [
        #""exp":"tomorrow""#, #""nbf":"now""#, #""iat":true"#, #""aud":7"#, #""aud":["mcp",7]"#,
        #""scope":["read"]"#, #""scp":{"read":true}"#, #""sub":42"#, #""iss":["https://issuer.example"]"#,
    ])
    func claimOfTheWrongType(member: String) throws {
        var object = try JSONValue.parse(claims).objectValue!
        let replacement = try JSONValue.parse("{" + member + "}").objectValue!
        object.merge(replacement) { _, new in new }
        try check(try es(nil, JSONValue.object(object).serialized()), .invalidClaim)
    }

    // MARK: time, issuer, audience, type, scopes

    func token(_ members: String) throws -> String {
        try es(nil, #"{"sub":"alice","iss":"https://issuer.example","aud":"mcp","scope":"read",\#(members)}"#)
    }

    @Test func expiryEdges() throws {
        let t = Int(Self.now)
        try check(try token(#""exp":\#(t)"#), .expired)  // exp == now is expired
        try check(try token(#""exp":\#(t + 1)"#), .ok)
        try check(try token(#""exp":\#(t - 1)"#), .expired)
        try check(try token(#""exp":\#(t - 1)"#), .ok, try verifier(["leeway": 5]))
        try check(try token(#""exp":\#(t - 5)"#), .expired, try verifier(["leeway": 5]))
        try check(try token(#""nbf":1"#), .missingClaim)  // no exp
        try check(try token(#""nbf":1"#), .ok, try verifier(["require_exp": false]))
        try check(try token(#""exp":\#(t).5"#), .ok)  // fractional exp
    }

    @Test func notBeforeAndIssuedAtEdges() throws {
        let t = Int(Self.now)
        let exp = #""exp":\#(Int(Self.now) + 300)"#
        try check(try token(exp + #","nbf":\#(t)"#), .ok)
        try check(try token(exp + #","nbf":\#(t + 1)"#), .notYetValid)
        try check(try token(exp + #","nbf":\#(t + 3)"#), .ok, try verifier(["leeway": 5]))
        try check(try token(exp + #","iat":\#(t)"#), .ok)
        try check(try token(exp + #","iat":\#(t + 1)"#), .notYetValid)
        try check(try token(exp + #","iat":\#(t + 3)"#), .ok, try verifier(["leeway": 5]))
    }

    @Test func issuerVariants() throws {
        let exp = #""exp":\#(Int(Self.now) + 300)"#
        func withIssuer(_ iss: String) throws -> String {
            try es(nil, #"{"sub":"a","aud":"mcp",\#(exp),"iss":\#(iss)}"#)
        }
        try check(try withIssuer(#""https://evil.example""#), .invalidIssuer)
        try check(try withIssuer(#""https://issuer.example/""#), .invalidIssuer)  // byte for byte
        try check(try withIssuer(#""HTTPS://ISSUER.EXAMPLE""#), .invalidIssuer)
        try check(try es(nil, #"{"sub":"a","aud":"mcp",\#(exp)}"#), .missingClaim)
        let two = try verifier(["issuer": ["https://a.example", "https://issuer.example"]])
        try check(try withIssuer(#""https://issuer.example""#), .ok, two)
        try check(try withIssuer(#""https://b.example""#), .invalidIssuer, two)
    }

    @Test func audienceVariants() throws {
        let exp = #""exp":\#(Int(Self.now) + 300)"#
        func withAudience(_ aud: String) throws -> String {
            try es(nil, #"{"sub":"a","iss":"https://issuer.example",\#(exp),"aud":\#(aud)}"#)
        }
        try check(try withAudience(#"["other","mcp"]"#), .ok)
        try check(try withAudience(#"["other"]"#), .invalidAudience)
        try check(try withAudience(#"[]"#), .invalidAudience)
        try check(try withAudience(#""MCP""#), .invalidAudience)
        try check(try es(nil, #"{"sub":"a","iss":"https://issuer.example",\#(exp)}"#), .missingClaim)
        try check(try withAudience(#""b""#), .ok, try verifier(["audience": ["a", "b"]]))
    }

    @Test func expectedType() throws {
        let v = try verifier(["typ": "at+jwt"])
        try check(try es(#"{"alg":"ES256","kid":"ec-1","typ":"at+jwt"}"#), .ok, v)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","typ":"application/AT+JWT"}"#), .ok, v)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","typ":"JWT"}"#), .invalidType, v)
        try check(try es(#"{"alg":"ES256","kid":"ec-1"}"#), .invalidType, v)
        try check(try es(#"{"alg":"ES256","kid":"ec-1","typ":7}"#), .malformedHeader)
    }

    @Test func scopesAndRequiredClaims() throws {
        let exp = #""exp":\#(Int(Self.now) + 300)"#
        let needs = try verifier(["required_scopes": ["read", "write"]])
        try check(
            try es(nil, #"{"sub":"a","iss":"https://issuer.example","aud":"mcp",\#(exp),"scope":"read write admin"}"#),
            .ok,
            needs
        )
        try check(try token(exp), .insufficientScope, needs)
        try check(
            try es(nil, #"{"sub":"a","iss":"https://issuer.example","aud":"mcp",\#(exp),"scp":["read","write"]}"#),
            .ok,
            needs
        )
        try check(
            try es(nil, #"{"sub":"a","iss":"https://issuer.example","aud":"mcp",\#(exp),"scp":"read write"}"#),
            .ok,
            needs
        )
        // scope wins over scp
        try check(
            try es(
                nil,
                #"{"sub":"a","iss":"https://issuer.example","aud":"mcp",\#(exp),"scope":"read","scp":["read","write"]}"#
            ),
            .insufficientScope,
            needs
        )
        try check(try token(exp), .missingClaim, try verifier(["required_claims": ["tenant"]]))
        let v = try verifier()
        #expect(outcome { try v.verify(try token(exp), requiredScopes: ["admin"]) } == .insufficientScope)
    }

    @Test func weakKeysAreRefused() throws {
        #expect(outcome { try JSONWebKey.generate(.RS256, rsaBits: 1024) } == .weakKey)
        let small = try rsaKeyJWK(bits: 1024)
        #expect(outcome { try JSONWebKey(jwk: small) } == .weakKey)
        #expect(
            outcome { try JWTVerifier(json: ["jwks": ["keys": [small]], "algorithms": ["RS256"]]) } == .invalidConfig
        )
        #expect(outcome { try JWTVerifier(json: ["public_key": "too short", "algorithms": ["HS256"]]) } == .weakKey)
        #expect(
            outcome {
                try JWTVerifier(json: [
                    "public_key": .string(String(repeating: "k", count: 32)), "algorithms": ["HS512"],
                ])
            } == .weakKey
        )
        let shortOct = try JSONWebKey(sharedSecret: Array("short".utf8))
        #expect(outcome { try shortOct.sign(.HS256, input: [1]) } == .weakKey)
    }

    @Test func accessTokenFields() throws {
        let exp = Int(Self.now) + 300
        let v = try verifier()
        let raw = try es(
            nil,
            #"{"sub":"alice","iss":"https://issuer.example","aud":"mcp","exp":\#(exp),"client_id":"cid","azp":"azp","scope":"a b"}"#
        )
        let token = try v.verify(raw)
        #expect(
            token.token == raw && token.clientID == "cid" && token.subject == "alice" && token.scopes == ["a", "b"]
                && token.expiresAt == Int64(exp)
        )
        let azp = try v.verify(
            try es(nil, #"{"sub":"alice","iss":"https://issuer.example","aud":"mcp","exp":\#(exp),"azp":"azp"}"#)
        )
        #expect(azp.clientID == "azp" && azp.scopes.isEmpty)
        let sub = try v.verify(
            try es(nil, #"{"sub":"alice","iss":"https://issuer.example","aud":"mcp","exp":\#(exp)}"#)
        )
        #expect(sub.clientID == "alice")
    }
}

// MARK: - Helpers that reach below the public API

func rsaPublicPEM(_ key: JSONWebKey) throws -> String {
    let bio = BIO_new(BIO_s_mem())!
    defer { BIO_free(bio) }
    #expect(PEM_write_bio_PUBKEY(bio, key.pkey) == 1)
    var pointer: UnsafeMutablePointer<CChar>? = nil
    let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
}

func pssSign(_ key: JSONWebKey, input: [UInt8], saltLength: Int32) throws -> [UInt8] {
    let ctx = EVP_PKEY_CTX_new_from_pkey(nil, key.pkey, nil)!
    defer { EVP_PKEY_CTX_free(ctx) }
    _ = EVP_PKEY_sign_init(ctx)
    _ = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING)
    _ = EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256())
    _ = EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, saltLength)
    let digest = try OpenSSL.sha256(input)
    var length = 512
    var signature = [UInt8](repeating: 0, count: length)
    #expect(EVP_PKEY_sign(ctx, &signature, &length, digest, digest.count) == 1)
    return Array(signature.prefix(length))
}

/// A public RSA JWK of `bits` bits, generated below our own 2048-bit floor.
func rsaKeyJWK(bits: Int32) throws -> JSONValue {
    let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil)!
    defer { EVP_PKEY_CTX_free(ctx) }
    var pkey: OpaquePointer? = nil
    _ = EVP_PKEY_keygen_init(ctx)
    _ = EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits)
    _ = EVP_PKEY_generate(ctx, &pkey)
    defer { EVP_PKEY_free(pkey) }
    let n = OpenSSL.bignumParameter(pkey!, "n")!
    let e = OpenSSL.bignumParameter(pkey!, "e")!
    return ["kty": "RSA", "n": .string(Base64URL.encode(n)), "e": .string(Base64URL.encode(e))]
}
