import Foundation
import Testing

@testable import FastMCPAuth

/// The repository's VERSION file is the one version: the Swift constant must say the same.
@Suite struct VersionTests {
    @Test func constantMatchesTheVersionFile() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let file = try String(contentsOf: repository.appendingPathComponent("VERSION"), encoding: .utf8)
        let version = file.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(FastMCPAuthVersion.string == version)
        let parts = version.split(separator: ".").compactMap { UInt32($0) }
        #expect(parts.count == 3)
        if parts.count == 3 { #expect(FastMCPAuthVersion.number == parts[0] << 16 | parts[1] << 8 | parts[2]) }
    }
}
