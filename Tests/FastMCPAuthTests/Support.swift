import Foundation
import Synchronization

@testable import FastMCPAuth

/// The repository's Tests/vectors (or FASTMCPAUTH_VECTORS).
let vectorsDirectory: String = {
    if let explicit = ProcessInfo.processInfo.environment["FASTMCPAUTH_VECTORS"] { return explicit }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("vectors").path
}()

func loadVector(_ relativePath: String) throws -> JSONValue {
    let data = try Data(contentsOf: URL(fileURLWithPath: vectorsDirectory + "/" + relativePath))
    return try JSONValue.parse(Array(data))
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out = [UInt8]()
    var iterator = hex.utf8.makeIterator()
    func nibble(_ c: UInt8) -> UInt8 {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        default: return c - 55
        }
    }
    while let high = iterator.next(), let low = iterator.next() { out.append(nibble(high) << 4 | nibble(low)) }
    return out
}

/// A settable clock for claims tests: no sleeps.
final class TestClock: Sendable {
    private let value: Locked<Double>
    init(_ now: Double) { value = Locked(now) }
    var now: Double {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
    func advance(_ seconds: Double) { value.withLock { $0 += seconds } }
    var function: @Sendable () -> Double { { [self] in self.now } }
}

/// Builds a compact JWS from raw header and claims JSON text (so tests can craft duplicates and
/// odd types) signed by `sign`.
func rawToken(header: String, claims: String, sign: ([UInt8]) throws -> [UInt8]) rethrows -> String {
    let input = Base64URL.encode(header) + "." + Base64URL.encode(claims)
    return input + "." + Base64URL.encode(try sign(Array(input.utf8)))
}

/// The status a verification ends with (.ok when it succeeds).
func outcome(_ body: () throws -> Any) -> ErrorCode {
    do {
        _ = try body()
        return .ok
    } catch let error as AuthError {
        return error.code
    } catch {
        return .internalError
    }
}
