#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex: the lock of the core and its tests. Not Synchronization's
/// `Mutex`, whose Linux futex ThreadSanitizer cannot see (every access under it is reported as a
/// race, so `make sanitize` would find nothing real); a pthread mutex costs the same uncontended.
// @unchecked: every access to `value` happens between pthread_mutex_lock and _unlock.
package final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: sending Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// `sending`, as with `Mutex`: a value that is not Sendable cannot be smuggled out of the lock.
    package func withLock<Result, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
