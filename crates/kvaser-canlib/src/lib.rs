//! # kvaser-canlib: safe wrappers over Kvaser's LINlib and CANlib
//!
//! The safe half of the `kvaser-canlib-sys` pair: the libraries are loaded at run time from a
//! directory the caller chooses (nothing links against them, so nothing here needs Kvaser's
//! SDK to build or to run without an adapter), and every call is wrapped so that no `unsafe`
//! leaves this crate. The LIN words (`LinId`, `Role`, `Checksum`, `LinFrame`) are `vxbus-lin`'s;
//! the `kvaser-lin` plugin is the user.
//!
//! Owns: loading the libraries from a directory (a missing library or symbol is a [`LoadError`]
//! that names the file and the fix, never a panic), finding an adapter by EAN and serial number
//! or channel number, and LIN channels whose handle is taken off the bus and closed on drop.
//! Every LINlib status is a typed [`LinError`] carrying the library's meaning.
//! Must not touch: CAN sockets, the chunk protocol or bus state: the plugin maps frames; this
//! module only speaks to the adapter.

use std::{
    fmt,
    os::raw::{c_int, c_uint, c_ulong, c_void},
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use kvaser_canlib_sys as sys;
use vxbus_lin::{Checksum, FrameFlags, LinFrame, LinId, Role};

/// Loading Kvaser's libraries failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot load Kvaser's {file} from {dir}: {reason}; install Kvaser's Linux drivers and \
         SDK (linlib, canlib) on the host and make the directory holding {file} the plugin's \
         library path"
    )]
    Library {
        file: &'static str,
        dir: PathBuf,
        reason: String,
    },
}

/// A LINlib status other than `linOK`, with the meaning Kvaser documents for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinError {
    #[error("linERR_NOMSG: no message available")]
    NoMessage,
    #[error("linERR_NOTRUNNING: the channel is not on the bus")]
    NotRunning,
    #[error("linERR_RUNNING: the channel is on the bus (take it off first)")]
    Running,
    #[error("linERR_MASTERONLY: only a master can do this")]
    MasterOnly,
    #[error("linERR_SLAVEONLY: only a slave can do this")]
    SlaveOnly,
    #[error("linERR_PARAM: a parameter is wrong")]
    Param,
    #[error("linERR_NOTFOUND: the hardware was not found (or the LIN transceiver is not powered)")]
    NotFound,
    #[error("linERR_NOMEM: out of memory")]
    NoMemory,
    #[error("linERR_NOCHANNELS: no channels available")]
    NoChannels,
    #[error("linERR_TIMEOUT: a timeout occurred")]
    Timeout,
    #[error("linERR_NOTINITIALIZED: the library is not initialized")]
    NotInitialized,
    #[error("linERR_NOHANDLES: no handle available")]
    NoHandles,
    #[error("linERR_INVHANDLE: the handle is invalid")]
    InvalidHandle,
    #[error("linERR_CANERROR: an error in the CAN layer")]
    CanError,
    #[error("linERR_ERRRESP: the LIN interface answered with an error")]
    ErrorResponse,
    #[error("linERR_WRONGRESP: the LIN interface's answer was not the expected one")]
    WrongResponse,
    #[error("linERR_DRIVER: the CAN driver type is not supported")]
    Driver,
    #[error("linERR_DRIVERFAILED: the driver failed")]
    DriverFailed,
    #[error("linERR_NOCARD: the adapter was removed or is not inserted")]
    NoCard,
    #[error("linERR_LICENSE: the license is not valid")]
    License,
    #[error("linERR_INTERNAL: an internal error in the driver")]
    Internal,
    #[error("linERR_NO_ACCESS: access denied")]
    NoAccess,
    #[error("linERR_VERSION: not supported by this version of the library or firmware")]
    Version,
    #[error("LINlib status {0}, which Kvaser does not document")]
    Unknown(i32),
}

impl LinError {
    /// `Ok` for `linOK` (and the non-negative values LINlib also counts as success).
    pub fn check(status: sys::LinStatus) -> Result<(), LinError> {
        use sys::LinStatus as S;
        Err(match status {
            s if s.0 >= 0 => return Ok(()),
            S::linERR_NOMSG => LinError::NoMessage,
            S::linERR_NOTRUNNING => LinError::NotRunning,
            S::linERR_RUNNING => LinError::Running,
            S::linERR_MASTERONLY => LinError::MasterOnly,
            S::linERR_SLAVEONLY => LinError::SlaveOnly,
            S::linERR_PARAM => LinError::Param,
            S::linERR_NOTFOUND => LinError::NotFound,
            S::linERR_NOMEM => LinError::NoMemory,
            S::linERR_NOCHANNELS => LinError::NoChannels,
            S::linERR_TIMEOUT => LinError::Timeout,
            S::linERR_NOTINITIALIZED => LinError::NotInitialized,
            S::linERR_NOHANDLES => LinError::NoHandles,
            S::linERR_INVHANDLE => LinError::InvalidHandle,
            S::linERR_CANERROR => LinError::CanError,
            S::linERR_ERRRESP => LinError::ErrorResponse,
            S::linERR_WRONGRESP => LinError::WrongResponse,
            S::linERR_DRIVER => LinError::Driver,
            S::linERR_DRIVERFAILED => LinError::DriverFailed,
            S::linERR_NOCARD => LinError::NoCard,
            S::linERR_LICENSE => LinError::License,
            S::linERR_INTERNAL => LinError::Internal,
            S::linERR_NO_ACCESS => LinError::NoAccess,
            S::linERR_VERSION => LinError::Version,
            other => LinError::Unknown(other.0),
        })
    }
}

/// Both libraries, loaded and initialized.
pub struct Kvaser {
    lin: Arc<sys::LinLib>,
    can: sys::CanLib,
}

impl fmt::Debug for Kvaser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kvaser { .. }")
    }
}

impl Kvaser {
    /// Loads `liblinlib.so.1` and `libcanlib.so.1` from `dir` and initializes them.
    pub fn load(dir: &Path) -> Result<Kvaser, LoadError> {
        let error = |file, e: sys::libloading::Error| LoadError::Library {
            file,
            dir: dir.to_owned(),
            reason: e.to_string(),
        };
        // SAFETY: loading runs the libraries' initializers; these are Kvaser's libraries (or
        // the tests' stand-in) as the user configured, and bindgen checked every symbol exists.
        let can = unsafe { sys::CanLib::new(dir.join(sys::CANLIB_SONAME)) }
            .map_err(|e| error(sys::CANLIB_SONAME, e))?;
        let lin = unsafe { sys::LinLib::new(dir.join(sys::LINLIB_SONAME)) }
            .map_err(|e| error(sys::LINLIB_SONAME, e))?;
        // SAFETY: documented as the first call to each library; no arguments.
        unsafe {
            can.canInitializeLibrary();
            lin.linInitializeLibrary();
        }
        Ok(Kvaser {
            lin: Arc::new(lin),
            can,
        })
    }

    /// Every channel CANlib knows, with its adapter's EAN and serial number.
    pub fn channels(&self) -> Result<Vec<ChannelInfo>, String> {
        let mut count: c_int = 0;
        // SAFETY: count is a valid out pointer.
        let status = unsafe { self.can.canGetNumberOfChannels(&mut count) };
        if status.0 < 0 {
            return Err(format!(
                "canGetNumberOfChannels failed: status {}",
                status.0
            ));
        }
        (0..count)
            .map(|channel| {
                let ean = self.channel_data(channel, sys::canCHANNELDATA_CARD_UPC_NO)?;
                let serial = self.channel_data(channel, sys::canCHANNELDATA_CARD_SERIAL_NO)?;
                Ok(ChannelInfo {
                    channel,
                    ean: Ean::from_bcd(ean),
                    serial: u64::from_le_bytes(serial),
                })
            })
            .collect()
    }

    fn channel_data(&self, channel: c_int, item: u32) -> Result<[u8; 8], String> {
        let mut buffer = [0u8; 8];
        // SAFETY: buffer is valid for its length, which is passed along.
        let status = unsafe {
            self.can.canGetChannelData(
                channel,
                item as c_int,
                buffer.as_mut_ptr().cast::<c_void>(),
                buffer.len(),
            )
        };
        if status.0 < 0 {
            return Err(format!(
                "canGetChannelData(channel {channel}, item {item}) failed: status {}",
                status.0
            ));
        }
        Ok(buffer)
    }

    /// The channel number `device` names: itself, or the first channel of the adapter with that
    /// EAN and serial number.
    pub fn find(&self, device: &DeviceId) -> Result<c_int, String> {
        let channels = self.channels()?;
        let found = match device {
            DeviceId::Channel(n) => channels.iter().find(|c| c.channel == *n),
            DeviceId::Adapter { ean, serial } => channels
                .iter()
                .find(|c| c.ean.matches(ean) && c.serial == *serial),
        };
        found.map(|c| c.channel).ok_or_else(|| {
            let seen: Vec<String> = channels.iter().map(ToString::to_string).collect();
            format!(
                "no Kvaser channel matches device_id {device}; channels found: {}",
                if seen.is_empty() {
                    "none".to_owned()
                } else {
                    seen.join(", ")
                }
            )
        })
    }

    /// Opens `channel` for LIN in `role`.
    pub fn open(&self, channel: c_int, role: Role) -> Result<LinChannel, LinError> {
        let flags = match role {
            Role::Master => sys::LIN_MASTER,
            Role::Slave => sys::LIN_SLAVE,
        };
        // SAFETY: plain integers in, a handle or a negative status out.
        let handle = unsafe { self.lin.linOpenChannel(channel, flags as c_int) };
        if handle < 0 {
            LinError::check(sys::LinStatus(handle))?;
        }
        Ok(LinChannel {
            lin: Arc::clone(&self.lin),
            handle,
            role,
        })
    }
}

/// A channel as CANlib lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub channel: c_int,
    pub ean: Ean,
    pub serial: u64,
}

impl fmt::Display for ChannelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}:{}", self.channel, self.ean, self.serial)
    }
}

/// An adapter's EAN: 13 digits, shown as Kvaser prints them (`73-30130-01112-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ean(String);

impl Ean {
    /// From CANlib's channel data: digits packed two per byte, least significant first.
    pub fn from_bcd(bytes: [u8; 8]) -> Ean {
        let mut digits: Vec<char> = bytes
            .iter()
            .flat_map(|b| [b & 0x0f, b >> 4])
            .map(|d| char::from(b'0' + d.min(9)))
            .collect();
        digits.truncate(13);
        digits.reverse();
        Ean(digits.into_iter().collect())
    }

    /// Whether the digits the user gave (any length, dashes ignored) end this EAN's digits:
    /// `011121` and `73-30130-01112-1` both match 7330130011121.
    pub fn matches(&self, given: &str) -> bool {
        let given: String = given.chars().filter(char::is_ascii_digit).collect();
        !given.is_empty() && self.0.ends_with(&given)
    }
}

impl fmt::Display for Ean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        write!(f, "{}-{}-{}-{}", &d[..2], &d[2..7], &d[7..12], &d[12..])
    }
}

/// Which adapter the user means: `EAN:serial` (as RemotiveBus writes it, `011121:1`) or a
/// CANlib channel number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceId {
    Adapter { ean: String, serial: u64 },
    Channel(c_int),
}

impl FromStr for DeviceId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not EAN:serial (for example 011121:1 or 73-30130-01112-1:1) nor a \
                 channel number"
            )
        };
        match s.split_once(':') {
            Some((ean, serial)) => {
                let digits = ean.chars().filter(char::is_ascii_digit).count();
                if digits == 0
                    || digits > 13
                    || !ean.chars().all(|c| c.is_ascii_digit() || c == '-')
                {
                    return Err(bad());
                }
                let serial = serial.parse().map_err(|_| bad())?;
                Ok(DeviceId::Adapter {
                    ean: ean.to_owned(),
                    serial,
                })
            }
            None => s
                .parse()
                .ok()
                .filter(|n: &c_int| *n >= 0)
                .map(DeviceId::Channel)
                .ok_or_else(bad),
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Adapter { ean, serial } => write!(f, "{ean}:{serial}"),
            DeviceId::Channel(n) => write!(f, "{n}"),
        }
    }
}

/// An open LIN channel: taken off the bus and closed when dropped.
pub struct LinChannel {
    lin: Arc<sys::LinLib>,
    handle: sys::LinHandle,
    role: Role,
}

impl fmt::Debug for LinChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinChannel({}, {:?})", self.handle, self.role)
    }
}

/// The C signature linWriteMessage and linUpdateMessage share: a handle, an id, data.
type DataCall =
    unsafe extern "C" fn(sys::LinHandle, c_uint, *const c_void, c_uint) -> sys::LinStatus;

impl LinChannel {
    pub fn role(&self) -> Role {
        self.role
    }

    /// Bit rate and checksum model; only while off the bus.
    pub fn setup(&self, checksum: Checksum, bitrate: u32) -> Result<(), LinError> {
        let flags = match checksum {
            Checksum::Classic => 0,
            Checksum::Enhanced => sys::LIN_ENHANCED_CHECKSUM,
        } | sys::LIN_VARIABLE_DLC;
        // SAFETY: a handle this channel owns and plain integers.
        LinError::check(unsafe { self.lin.linSetupLIN(self.handle, flags, bitrate) })
    }

    pub fn bus_on(&self) -> Result<(), LinError> {
        // SAFETY: as in setup.
        LinError::check(unsafe { self.lin.linBusOn(self.handle) })
    }

    pub fn bus_off(&self) -> Result<(), LinError> {
        // SAFETY: as in setup.
        LinError::check(unsafe { self.lin.linBusOff(self.handle) })
    }

    /// Passes `data` for `id` to `call`, one of this library's functions taking data.
    fn with_data(&self, call: DataCall, id: LinId, data: &[u8]) -> Result<(), LinError> {
        if data.len() > 8 {
            return Err(LinError::Param);
        }
        // SAFETY: a handle this channel owns; data is valid for its length (at most 8, the
        // dlc given), which LINlib only reads.
        LinError::check(unsafe {
            call(
                self.handle,
                id.get().into(),
                data.as_ptr().cast::<c_void>(),
                data.len() as c_uint,
            )
        })
    }

    /// Master: sends a header and `data` as the response (a master-published frame).
    pub fn write(&self, id: LinId, data: &[u8]) -> Result<(), LinError> {
        self.with_data(self.lin.linWriteMessage, id, data)
    }

    /// Master: sends a header; the slave's response is read later.
    pub fn request(&self, id: LinId) -> Result<(), LinError> {
        // SAFETY: as in setup.
        LinError::check(unsafe { self.lin.linRequestMessage(self.handle, id.get().into()) })
    }

    /// Slave: the response the adapter gives when the master sends a header for `id`.
    pub fn update(&self, id: LinId, data: &[u8]) -> Result<(), LinError> {
        self.with_data(self.lin.linUpdateMessage, id, data)
    }

    /// Slave: no response for `id` any more.
    pub fn clear(&self, id: LinId) -> Result<(), LinError> {
        // SAFETY: as in setup.
        LinError::check(unsafe { self.lin.linClearMessage(self.handle, id.get().into()) })
    }

    /// The next frame seen on the bus, waiting up to `timeout`; `None` if none came.
    pub fn read(&self, timeout: Duration) -> Result<Option<LinFrame>, LinError> {
        let (mut id, mut dlc, mut flags): (c_uint, c_uint, c_uint) = (0, 0, 0);
        let mut data = [0u8; 8];
        // SAFETY: a zeroed LinMessageInfo is a valid value of this plain C struct.
        let mut info: sys::LinMessageInfo = unsafe { std::mem::zeroed() };
        let millis = c_ulong::try_from(timeout.as_millis()).unwrap_or(c_ulong::MAX);
        // SAFETY: every out pointer is valid; data holds the 8 bytes LIN allows at most.
        let status = unsafe {
            self.lin.linReadMessageWait(
                self.handle,
                &mut id,
                data.as_mut_ptr().cast::<c_void>(),
                &mut dlc,
                &mut flags,
                &mut info,
                millis,
            )
        };
        #[allow(clippy::useless_conversion)] // c_ulong is 32 bits on 32-bit targets
        match LinError::check(status) {
            Ok(()) => Ok(Some(LinFrame {
                id,
                data: data[..(dlc as usize).min(8)].to_vec(),
                flags: FrameFlags(flags),
                timestamp_ms: u64::from(info.timestamp),
            })),
            Err(LinError::NoMessage) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for LinChannel {
    fn drop(&mut self) {
        // SAFETY: the handle is this channel's; nothing uses it after drop. Errors are moot
        // here (off the bus already, or the adapter gone): the handle is closed regardless.
        unsafe {
            self.lin.linBusOff(self.handle);
            self.lin.linClose(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_has_its_meaning() {
        assert_eq!(LinError::check(sys::LinStatus::linOK), Ok(()));
        assert_eq!(LinError::check(sys::LinStatus(3)), Ok(()));
        let cases = [
            (-1, LinError::NoMessage),
            (-3, LinError::NotRunning),
            (-8, LinError::NotFound),
            (-14, LinError::InvalidHandle),
            (-20, LinError::NoCard),
            (-24, LinError::Version),
            (-2, LinError::Unknown(-2)),
            (-99, LinError::Unknown(-99)),
        ];
        for (code, expected) in cases {
            assert_eq!(LinError::check(sys::LinStatus(code)), Err(expected));
        }
        for code in -24..=-1 {
            let err = LinError::check(sys::LinStatus(code)).unwrap_err();
            if code != -2 {
                assert!(err.to_string().starts_with("linERR_"), "{code}: {err}");
            }
        }
        assert!(LinError::NotFound.to_string().contains("not powered"));
    }

    #[test]
    fn device_ids_as_remotivebus_users_write_them() {
        assert_eq!(
            "011121:1".parse(),
            Ok(DeviceId::Adapter {
                ean: "011121".into(),
                serial: 1
            })
        );
        assert_eq!(
            "73-30130-01112-1:42"
                .parse::<DeviceId>()
                .unwrap()
                .to_string(),
            "73-30130-01112-1:42"
        );
        assert_eq!("2".parse(), Ok(DeviceId::Channel(2)));
        for bad in [
            "",
            "x:1",
            "011121:",
            "011121:x",
            "-1",
            "12345678901234:1",
            "abc",
        ] {
            let err = bad.parse::<DeviceId>().unwrap_err();
            assert!(err.contains("is not EAN:serial"), "{bad}: {err}");
        }
    }

    #[test]
    fn eans_decode_from_bcd_and_match_their_short_form() {
        // 73-30130-01112-1, least significant digit pair first.
        let ean = Ean::from_bcd([0x21, 0x11, 0x01, 0x30, 0x01, 0x33, 0x07, 0x00]);
        assert_eq!(ean.to_string(), "73-30130-01112-1");
        assert!(ean.matches("011121"));
        assert!(ean.matches("73-30130-01112-1"));
        assert!(!ean.matches("011122"));
        assert!(!ean.matches(""));
    }

    /// vxbus-lin's frame flags are LINlib's message flags, so frames read here keep their bits.
    #[test]
    fn frame_flags_are_linlibs() {
        for (ours, linlib) in [
            (FrameFlags::TX, sys::LIN_TX),
            (FrameFlags::RX, sys::LIN_RX),
            (FrameFlags::WAKEUP, sys::LIN_WAKEUP_FRAME),
            (FrameFlags::NO_DATA, sys::LIN_NODATA),
            (FrameFlags::CHECKSUM_ERROR, sys::LIN_CSUM_ERROR),
            (FrameFlags::PARITY_ERROR, sys::LIN_PARITY_ERROR),
            (FrameFlags::SYNC_ERROR, sys::LIN_SYNCH_ERROR),
            (FrameFlags::BIT_ERROR, sys::LIN_BIT_ERROR),
        ] {
            assert_eq!(ours, linlib);
        }
    }

    #[test]
    fn a_missing_library_names_the_file_and_the_fix() {
        let err = Kvaser::load(Path::new("/nonexistent/kvaser")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("libcanlib.so.1 from /nonexistent/kvaser"),
            "{text}"
        );
        assert!(text.contains("install Kvaser's Linux drivers"), "{text}");
    }
}
