/// The library version; include/fastmcpauth.h's FMA_VERSION_* macros must match (a test checks).
public enum FastMCPAuthVersion {
    public static let major = 0
    public static let minor = 1
    public static let patch = 0
    public static let string = "\(major).\(minor).\(patch)"
}
