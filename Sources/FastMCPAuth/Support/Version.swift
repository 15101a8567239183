/// The library version. The repository's VERSION file is the one source: this constant, the
/// header's FMA_VERSION_* macros and the Python package are checked against it by tests.
public enum FastMCPAuthVersion {
    public static let major: UInt32 = 0
    public static let minor: UInt32 = 1
    public static let patch: UInt32 = 0
    public static let string = "\(major).\(minor).\(patch)"
    /// 0xMMmmpp, as the header's FMA_VERSION_NUM.
    public static let number = major << 16 | minor << 8 | patch
}
