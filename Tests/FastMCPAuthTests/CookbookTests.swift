import Testing

@testable import FastMCPAuth

/// RFC 7520 (JOSE cookbook) signatures, RFC 7515 Appendix A, RFC 7517/7638/8037 keys.
@Suite struct CookbookTests {
    static let jwsFiles = [
        "jws/4_1.rsa_v15_signature.json", "jws/4_2.rsa-pss_signature.json", "jws/4_3.ecdsa_signature.json",
        "jws/4_4.hmac-sha2_integrity_protection.json", "jws/4_5.signature_with_detached_content.json",
        "jws/4_6.protecting_specific_header_fields.json", "jws/4_7.protecting_content_only.json",
        "jws/4_8.multiple_signatures.json", "curve25519/jws.json",
    ]

    /// Each signature of each example verifies over its signing input with the example's key;
    /// deterministic ones (RS256, HS256, EdDSA) are reproduced byte for byte by our signer.
    @Test(arguments: jwsFiles)
    func signaturesVerifyAndReproduce(file: String) throws {
        let example = try loadVector("cookbook/" + file)
        let input = example["input"]!
        let keys = input["key"]!.arrayValue ?? [input["key"]!]
        let algs = input["alg"]!.stringOrStringArray!
        let signings = example["signing"]!.arrayValue ?? [example["signing"]!]
        #expect(keys.count == signings.count && algs.count == signings.count)
        for (index, signing) in signings.enumerated() {
            let alg = try #require(JWSAlgorithm(name: algs[index]))
            let key = try JSONWebKey(jwk: keys[index])
            let signingInput = Array(signing["sig-input"]!.stringValue!.utf8)
            let signature = try #require(Base64URL.decode(signing["sig"]!.stringValue!))
            #expect(try key.verify(alg, input: signingInput, signature: signature), "\(file) signature \(index)")
            if alg.family != .hmac {
                let publicKey = try JSONWebKey(jwk: key.publicJWK())
                #expect(try publicKey.verify(alg, input: signingInput, signature: signature))
            }
            var tampered = signature
            tampered[tampered.count / 2] ^= 0x01
            #expect(try !key.verify(alg, input: signingInput, signature: tampered))
            if [.rsaPKCS1, .hmac, .eddsa].contains(alg.family) {
                #expect(
                    try key.sign(alg, input: signingInput) == signature,
                    "\(file): deterministic signature reproduced"
                )
            }
        }
    }

    /// The compact examples run through the full JWT verifier: the signature and header pass,
    /// and the payload (plain text, not claims) is then refused as malformed_claims; the detached
    /// example has an empty payload part, so its signature cannot match.
    @Test(arguments: [
        "jws/4_1.rsa_v15_signature.json", "jws/4_2.rsa-pss_signature.json", "jws/4_3.ecdsa_signature.json",
        "jws/4_4.hmac-sha2_integrity_protection.json", "jws/4_5.signature_with_detached_content.json",
        "curve25519/jws.json",
    ])
    func compactExamplesThroughTheVerifier(file: String) throws {
        let example = try loadVector("cookbook/" + file)
        let key = try JSONWebKey(jwk: example["input"]!["key"]!)
        let alg = try #require(JWSAlgorithm(name: example["input"]!["alg"]!.stringValue!))
        let jwks: JSONValue = ["keys": [alg.family == .hmac ? try key.privateJWK() : try key.publicJWK()]]
        let verifier = try JWTVerifier(json: ["jwks": jwks, "algorithms": [.string(alg.rawValue)], "cache_size": 0])
        let compact = example["output"]!["compact"]!.stringValue!
        let expected: ErrorCode = file.contains("detached") ? .badSignature : .malformedClaims
        #expect(outcome { try verifier.verify(compact) } == expected)
    }

    /// RFC 7515 A.1–A.4 verify (at a time before their 2011 exp); A.5 (alg none) never does.
    @Test func rfc7515AppendixA() throws {
        let document = try loadVector("cookbook/rfc7515_appendixA.json")
        let clock = TestClock(1_300_819_000)
        var seen = Set<String>()
        for example in document["examples"]!.arrayValue! {
            let name = example["name"]!.stringValue!
            let compact = example["compact"]!.stringValue!
            let algName = example["alg"]!.stringValue!
            if algName == "none" {
                let verifier = try JWTVerifier(
                    json: ["public_key": "0123456789abcdef0123456789abcdef", "algorithms": ["HS256"]],
                    clock: clock.function
                )
                #expect(outcome { try verifier.verify(compact) } == .algNotAllowed, "\(name)")
                seen.insert("A.5")
                continue
            }
            let key = try JSONWebKey(jwk: example["key"]!)
            let verificationKey = key.keyType == .oct ? try key.privateJWK() : try key.publicJWK()
            let verifier = try JWTVerifier(
                json: ["jwks": ["keys": [verificationKey]], "algorithms": [.string(algName)]],
                clock: clock.function
            )
            if name.hasPrefix("A.4") {
                #expect(
                    outcome { try verifier.verify(compact) } == .malformedClaims,
                    "A.4's payload is the text \"Payload\""
                )
            } else {
                let token = try verifier.verify(compact)
                #expect(token.claims["iss"] == "joe")
                #expect(token.expiresAt == 1_300_819_380)
                #expect(token.token == compact)
                clock.advance(1000)  // past exp
                #expect(outcome { try verifier.verify(compact) } == .expired)
                clock.now = 1_300_819_000
            }
            seen.insert(String(name.prefix(3)))
        }
        #expect(seen == ["A.1", "A.2", "A.3", "A.4", "A.5"])
    }

    @Test func rfc7517And8037KeysAndThumbprints() throws {
        let document = try loadVector("cookbook/rfc7517_rfc8037_keys.json")
        let publicSet = document["rfc7517_A1_public"]!
        let thumbprints = publicSet["thumbprints"]!.stringOrStringArray!
        for (index, jwk) in publicSet["keys"]!.arrayValue!.enumerated() {
            #expect(try JSONWebKey(jwk: jwk).thumbprint() == thumbprints[index])
        }
        let edPublic = document["rfc8037_A2_public"]!
        #expect(
            try JSONWebKey(jwk: edPublic["keys"]!.arrayValue![0]).thumbprint()
                == edPublic["thumbprints"]!.stringOrStringArray![0]
        )
        // Private keys load and expose the same public members.
        for name in ["rfc7517_A2_private", "rfc8037_A1_private"] {
            for jwk in document[name]!.arrayValue ?? document[name]!["keys"]!.arrayValue! {
                let key = try JSONWebKey(jwk: jwk)
                #expect(key.isPrivate)
                let publicMembers = try key.publicJWK().objectValue!
                #expect(publicMembers["d"] == nil)
                #expect(publicMembers["x"] == jwk["x"] || publicMembers["n"] == jwk["n"])
            }
        }
        // The EC key of A.1 says use "enc": it must never verify signatures.
        let encKey = try JSONWebKey(jwk: publicSet["keys"]!.arrayValue![0])
        #expect(!encKey.permits(.ES256, operation: "verify"))
        // A.3: an oct key whose alg is A128KW is not an HS key.
        let kw = try JSONWebKey(jwk: document["rfc7517_A3_symmetric"]!["keys"]!.arrayValue![0])
        #expect(!kw.permits(.HS256, operation: "verify"))
    }

    @Test(arguments: [
        "jwk/3_1.ec_public_key.json", "jwk/3_2.ec_private_key.json", "jwk/3_3.rsa_public_key.json",
        "jwk/3_4.rsa_private_key.json", "jwk/3_5.symmetric_key_mac_computation.json",
        "jwk/3_6.symmetric_key_encryption.json",
    ])
    func cookbookKeysLoad(file: String) throws {
        let jwk = try loadVector("cookbook/" + file)
        let key = try JSONWebKey(jwk: jwk)
        #expect(key.keyID == jwk["kid"]?.stringValue)
        let exported = try key.privateJWK().objectValue!
        for (name, value) in jwk.objectValue! {
            #expect(exported[name] == value, "\(file): member \(name) round-trips")
        }
    }
}
