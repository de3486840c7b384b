// Unaligned big-endian loads and stores on raw frame memory. Callers check bounds first;
// these helpers only spell the byte order once.

extension UnsafeRawPointer {
    @inlinable @inline(__always)
    public func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inlinable @inline(__always)
    public func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inlinable @inline(__always)
    public func be48(_ offset: Int) -> UInt64 {
        UInt64(be16(offset)) << 32 | UInt64(be32(offset + 2))
    }
    @inlinable @inline(__always)
    public func be64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    @inlinable @inline(__always)
    public func be128(_ offset: Int) -> UInt128 {
        UInt128(be64(offset)) << 64 | UInt128(be64(offset + 8))
    }
    @inlinable @inline(__always)
    public func u8(_ offset: Int) -> UInt8 {
        load(fromByteOffset: offset, as: UInt8.self)
    }
}

extension UnsafeMutableRawPointer {
    @inlinable @inline(__always)
    public func be16(_ offset: Int) -> UInt16 { UnsafeRawPointer(self).be16(offset) }
    @inlinable @inline(__always)
    public func be32(_ offset: Int) -> UInt32 { UnsafeRawPointer(self).be32(offset) }
    @inlinable @inline(__always)
    public func be48(_ offset: Int) -> UInt64 { UnsafeRawPointer(self).be48(offset) }
    @inlinable @inline(__always)
    public func be128(_ offset: Int) -> UInt128 { UnsafeRawPointer(self).be128(offset) }
    @inlinable @inline(__always)
    public func u8(_ offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }

    @inlinable @inline(__always)
    public func setBE16(_ offset: Int, _ v: UInt16) {
        storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inlinable @inline(__always)
    public func setBE32(_ offset: Int, _ v: UInt32) {
        storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
    @inlinable @inline(__always)
    public func setBE48(_ offset: Int, _ v: UInt64) {
        setBE16(offset, UInt16(truncatingIfNeeded: v >> 32))
        setBE32(offset + 2, UInt32(truncatingIfNeeded: v))
    }
    @inlinable @inline(__always)
    public func setBE64(_ offset: Int, _ v: UInt64) {
        storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt64.self)
    }
    @inlinable @inline(__always)
    public func setBE128(_ offset: Int, _ v: UInt128) {
        setBE64(offset, UInt64(truncatingIfNeeded: v >> 64))
        setBE64(offset + 8, UInt64(truncatingIfNeeded: v))
    }
    @inlinable @inline(__always)
    public func setU8(_ offset: Int, _ v: UInt8) {
        storeBytes(of: v, toByteOffset: offset, as: UInt8.self)
    }
}
