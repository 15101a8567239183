// swift-tools-version: 6.1
import PackageDescription

// The shared library links the Swift runtime statically, exports only `fma_*` (exports.map)
// and carries SONAME libfastmcpauth.so.0, so C and Python load it with no Swift toolchain.
let libraryLinkerFlags: [String] = [
    "-static-stdlib",
    "-use-ld=lld",
    "-Xlinker", "--version-script=\(Context.packageDirectory)/exports.map",
    "-Xlinker", "-soname=libfastmcpauth.so.0",
]

let package = Package(
    name: "fastmcpauth",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "fastmcpauth", type: .dynamic, targets: ["FastMCPAuthABI"]),
        .library(name: "FastMCPAuth", targets: ["FastMCPAuth"]),
        // OAuthClient as swift-sdk's HTTPClientAuthorizer (kept out of the core: it needs Foundation).
        .library(name: "FastMCPAuthMCP", targets: ["FastMCPAuthMCP"]),
        .executable(name: "fastmcpauth-cli", targets: ["fastmcpauth-cli"]),
        .executable(name: "fastmcpauth-host", targets: ["fastmcpauth-host"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .target(
            name: "FastMCPAuth",
            dependencies: ["COpenSSL", "CCurl", "CJansson", "CSQLite", "CHiredis"]
        ),
        // Development only: the embedded identity provider of `make run` (never in the library).
        .target(
            name: "FastMCPAuthDevelopment",
            dependencies: ["FastMCPAuth"]
        ),
        .target(
            name: "FastMCPAuthMCP",
            dependencies: ["FastMCPAuth", .product(name: "MCP", package: "swift-sdk")]
        ),
        .target(
            name: "FastMCPAuthABI",
            dependencies: ["FastMCPAuth"],
            linkerSettings: [.unsafeFlags(libraryLinkerFlags)]
        ),
        .executableTarget(
            name: "fastmcpauth-cli",
            dependencies: [
                "FastMCPAuth",
                "FastMCPAuthMCP",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "fastmcpauth-host",
            dependencies: [
                "FastMCPAuth",
                "FastMCPAuthDevelopment",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzz targets (make fuzz): libFuzzer when built with -sanitize=fuzzer -DFUZZING, a corpus
        // replayer otherwise.
        .target(name: "CFuzzDriver"),
        .executableTarget(
            name: "fastmcpauth-fuzz",
            dependencies: ["FastMCPAuth", "CFuzzDriver"],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .testTarget(
            name: "FastMCPAuthTests",
            dependencies: [
                "FastMCPAuth", "FastMCPAuthDevelopment", "FastMCPAuthMCP", "COpenSSL", "fastmcpauth-host",
                .product(name: "MCP", package: "swift-sdk"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
