//! A STAND-IN for Kvaser's `liblinlib.so.1` and `libcanlib.so.1`, for vxbus's tests only: no
//! hardware, no Kvaser code. It exports the LINlib and CANlib functions `kvaser.h` declares and
//! simulates what the plugin sees through them: adapters (EAN, serial number) and one LIN bus per
//! channel with a scripted node on the far side. The plugin loads it through the same library
//! path setting as the real libraries, so its real code runs unchanged.
//!
//! Scripted by a JSON file (all fields optional): the one named in `KVASER_STANDIN_SCRIPT`,
//! else `kvaser-standin.json` in the directory it was loaded from (so a test can script it
//! without reaching the environment of the process that loads it, such as a managed plugin's):
//!
//! ```text
//! { "channels": [{"ean": "73-30130-01112-1", "serial": 1}],
//!   "responses": {"32": [1, 2, 3, 4]},    // the far node answers a header for id 32
//!   "checksum_errors": [33],              // answers for these ids arrive with a checksum error
//!   "headers": [16, 32], "header_period_ms": 10,  // a simulated master's schedule (adapter as slave)
//!   "record": "/var/lib/vxbus/kvaser-standin.log" }  // where to record (below)
//! ```
//!
//! Every call that changes something is appended to the file named in `KVASER_STANDIN_RECORD`,
//! else in the script's `record`, one line each: milliseconds since the library was loaded, the function, its arguments
//! (`12 linWriteMessage h=0 id=16 data=0102`), so tests check what the plugin did and when.
#![allow(non_snake_case, non_upper_case_globals, clippy::missing_safety_doc)]

use std::{
    collections::{BTreeMap, VecDeque},
    fs::OpenOptions,
    io::Write,
    os::raw::{c_int, c_uchar, c_uint, c_ulong, c_void},
    sync::{Condvar, Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use kvaser_canlib_sys::{
    canCHANNELDATA_CARD_SERIAL_NO, canCHANNELDATA_CARD_UPC_NO, canCHANNELDATA_CHAN_NO_ON_CARD,
    canCHANNELDATA_DEVDESCR_ASCII, canStatus, LinHandle, LinMessageInfo, LinStatus, LIN_CSUM_ERROR,
    LIN_ENHANCED_CHECKSUM, LIN_MASTER, LIN_NODATA, LIN_RX, LIN_SLAVE, LIN_TX,
};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Script {
    channels: Vec<Adapter>,
    responses: BTreeMap<String, Vec<u8>>,
    checksum_errors: Vec<u32>,
    headers: Vec<u32>,
    header_period_ms: Option<u64>,
    /// Where to record calls, when `KVASER_STANDIN_RECORD` is not set (a writable place: the
    /// stand-in's own directory may be a managed plugin's read-only mount).
    record: Option<std::path::PathBuf>,
}

#[derive(serde::Deserialize, Clone)]
struct Adapter {
    ean: String,
    serial: u64,
}

/// A frame waiting to be read by the plugin.
struct Frame {
    id: u32,
    data: Vec<u8>,
    flags: u32,
}

struct Channel {
    master: bool,
    on_bus: bool,
    bitrate: u32,
    /// Slave: the response data the adapter gives for an id (linUpdateMessage).
    updates: BTreeMap<u32, Vec<u8>>,
    rx: VecDeque<Frame>,
}

struct Sim {
    script: Script,
    adapters: Vec<Adapter>,
    handles: Vec<Option<Channel>>,
    started: Instant,
}

fn sim() -> &'static (Mutex<Sim>, Condvar) {
    static SIM: OnceLock<(Mutex<Sim>, Condvar)> = OnceLock::new();
    SIM.get_or_init(|| {
        let script: Script = std::env::var_os("KVASER_STANDIN_SCRIPT")
            .map(std::path::PathBuf::from)
            .or_else(|| beside_me("kvaser-standin.json").filter(|p| p.exists()))
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("kvaser stand-in: script");
                serde_json::from_str(&text).expect("kvaser stand-in: script is not valid JSON")
            })
            .unwrap_or_default();
        let adapters = if script.channels.is_empty() {
            vec![Adapter {
                ean: "73-30130-01112-1".into(),
                serial: 1,
            }]
        } else {
            script.channels.clone()
        };
        let sim = Sim {
            script,
            adapters,
            handles: Vec::new(),
            started: Instant::now(),
        };
        (Mutex::new(sim), Condvar::new())
    })
}

/// `name` in the directory this library was loaded from (the path given to dlopen, so the
/// directory of a symlink named liblinlib.so.1, not of the file it points to).
fn beside_me(name: &str) -> Option<std::path::PathBuf> {
    // SAFETY: dladdr only reads the loader's tables; `info` is written on success, and
    // dli_fname then points at a NUL-terminated path the loader keeps while we are loaded.
    let path = unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(beside_me as *const libc::c_void, &mut info) == 0
            || info.dli_fname.is_null()
        {
            return None;
        }
        std::ffi::CStr::from_ptr(info.dli_fname)
            .to_str()
            .ok()?
            .to_owned()
    };
    Some(std::path::Path::new(&path).parent()?.join(name))
}

fn lock() -> MutexGuard<'static, Sim> {
    sim()
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sim {
    fn record(&self, line: std::fmt::Arguments) {
        let Some(path) = std::env::var_os("KVASER_STANDIN_RECORD")
            .map(std::path::PathBuf::from)
            .or_else(|| self.script.record.clone())
        else {
            return;
        };
        let ms = self.started.elapsed().as_millis();
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{ms} {line}");
        }
    }

    /// The adapter a CANlib/LINlib channel number names.
    fn adapter(&self, channel: c_int) -> Option<&Adapter> {
        usize::try_from(channel)
            .ok()
            .and_then(|i| self.adapters.get(i))
    }

    fn channel(&mut self, h: LinHandle) -> Result<&mut Channel, LinStatus> {
        usize::try_from(h)
            .ok()
            .and_then(|i| self.handles.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(LinStatus::linERR_INVHANDLE)
    }

    /// What the far node puts on the bus for a header with `id`.
    fn answer(&self, id: u32) -> Frame {
        match self.script.responses.get(&id.to_string()) {
            Some(data) => {
                let mut flags = LIN_RX;
                if self.script.checksum_errors.contains(&id) {
                    flags |= LIN_CSUM_ERROR;
                }
                Frame {
                    id,
                    data: data.clone(),
                    flags,
                }
            }
            None => Frame {
                id,
                data: Vec::new(),
                flags: LIN_RX | LIN_NODATA,
            },
        }
    }
}

/// What LINlib refuses before a master puts a header on the bus.
fn master_may_send(c: &Channel, id: c_uint) -> Result<(), LinStatus> {
    if !c.master {
        return Err(LinStatus::linERR_MASTERONLY);
    }
    if !c.on_bus {
        return Err(LinStatus::linERR_NOTRUNNING);
    }
    if id > 63 {
        return Err(LinStatus::linERR_PARAM);
    }
    Ok(())
}

/// Bit rates change only off the bus.
fn set_bitrate(c: &mut Channel, bps: c_uint) -> Result<(), LinStatus> {
    if c.on_bus {
        return Err(LinStatus::linERR_RUNNING);
    }
    c.bitrate = bps;
    Ok(())
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

fn status(result: Result<(), LinStatus>) -> LinStatus {
    result.err().unwrap_or(LinStatus::linOK)
}

unsafe fn bytes<'a>(msg: *const c_void, dlc: c_uint) -> Result<&'a [u8], LinStatus> {
    if dlc > 8 || (dlc > 0 && msg.is_null()) {
        return Err(LinStatus::linERR_PARAM);
    }
    if dlc == 0 {
        return Ok(&[]);
    }
    Ok(std::slice::from_raw_parts(msg.cast::<u8>(), dlc as usize))
}

// ---- LINlib ------------------------------------------------------------------------------

#[no_mangle]
pub extern "C" fn linInitializeLibrary() {
    lock().record(format_args!("linInitializeLibrary"));
}

#[no_mangle]
pub unsafe extern "C" fn linGetTransceiverData(
    channel: c_int,
    eanNo: *mut c_uchar,
    serNo: *mut c_uchar,
    ttype: *mut c_int,
) -> LinStatus {
    let sim = lock();
    let Some(adapter) = sim.adapter(channel) else {
        return LinStatus::linERR_NOTFOUND;
    };
    if !eanNo.is_null() {
        std::ptr::copy_nonoverlapping(ean_bcd(&adapter.ean).as_ptr(), eanNo, 8);
    }
    if !serNo.is_null() {
        std::ptr::copy_nonoverlapping(adapter.serial.to_le_bytes().as_ptr(), serNo, 8);
    }
    if !ttype.is_null() {
        *ttype = 0;
    }
    LinStatus::linOK
}

#[no_mangle]
pub extern "C" fn linOpenChannel(channel: c_int, flags: c_int) -> LinHandle {
    let mut sim = lock();
    let role = match flags as u32 {
        LIN_MASTER => "master",
        LIN_SLAVE => "slave",
        _ => return LinStatus::linERR_PARAM.0,
    };
    if sim.adapter(channel).is_none() {
        sim.record(format_args!(
            "linOpenChannel channel={channel} {role} -> notfound"
        ));
        return LinStatus::linERR_NOTFOUND.0;
    }
    sim.handles.push(Some(Channel {
        master: role == "master",
        on_bus: false,
        bitrate: 0,
        updates: BTreeMap::new(),
        rx: VecDeque::new(),
    }));
    let h = sim.handles.len() as LinHandle - 1;
    sim.record(format_args!(
        "linOpenChannel channel={channel} {role} -> h={h}"
    ));
    h
}

#[no_mangle]
pub extern "C" fn linClose(h: LinHandle) -> LinStatus {
    let mut sim = lock();
    let result = sim.channel(h).map(|_| ());
    if result.is_ok() {
        sim.handles[h as usize] = None;
        sim.record(format_args!("linClose h={h}"));
    }
    sim_notify();
    status(result)
}

#[no_mangle]
pub extern "C" fn linSetBitrate(h: LinHandle, bps: c_uint) -> LinStatus {
    let mut sim = lock();
    let result = sim.channel(h).and_then(|c| set_bitrate(c, bps));
    sim.record(format_args!(
        "linSetBitrate h={h} bps={bps} -> {}",
        status(result).0
    ));
    status(result)
}

#[no_mangle]
pub extern "C" fn linSetupLIN(h: LinHandle, lFlags: c_uint, bps: c_uint) -> LinStatus {
    let mut sim = lock();
    let result = sim.channel(h).and_then(|c| set_bitrate(c, bps));
    let checksum = if lFlags & LIN_ENHANCED_CHECKSUM != 0 {
        "enhanced"
    } else {
        "classic"
    };
    sim.record(format_args!(
        "linSetupLIN h={h} checksum={checksum} flags={lFlags} bps={bps} -> {}",
        status(result).0
    ));
    status(result)
}

#[no_mangle]
pub extern "C" fn linBusOn(h: LinHandle) -> LinStatus {
    let mut sim = lock();
    let result = sim.channel(h).map(|c| {
        c.on_bus = true;
        !c.master
    });
    let Ok(slave) = result else {
        return status(result.map(|_| ()));
    };
    sim.record(format_args!("linBusOn h={h}"));
    if slave && !sim.script.headers.is_empty() {
        let period = Duration::from_millis(sim.script.header_period_ms.unwrap_or(10));
        std::thread::spawn(move || simulated_master(h, period));
    }
    LinStatus::linOK
}

/// The master on the far side of an adapter used as a slave: sends the script's headers in a
/// loop; the adapter answers those it has data for (linUpdateMessage), the far node the rest.
fn simulated_master(h: LinHandle, period: Duration) {
    loop {
        let headers = lock().script.headers.clone();
        for id in headers {
            std::thread::sleep(period);
            let mut sim = lock();
            let frame = match sim.channel(h) {
                Ok(c) if c.on_bus => c.updates.get(&id).cloned(),
                _ => return,
            };
            let frame = match frame {
                Some(data) => Frame {
                    id,
                    data,
                    flags: LIN_TX,
                },
                None => sim.answer(id),
            };
            if let Ok(c) = sim.channel(h) {
                c.rx.push_back(frame);
            }
            drop(sim);
            sim_notify();
        }
    }
}

fn sim_notify() {
    sim().1.notify_all();
}

#[no_mangle]
pub extern "C" fn linBusOff(h: LinHandle) -> LinStatus {
    let mut sim = lock();
    let result = sim.channel(h).map(|c| c.on_bus = false);
    if result.is_ok() {
        sim.record(format_args!("linBusOff h={h}"));
    }
    sim_notify();
    status(result)
}

/// A call that hands data to a channel (linWriteMessage, linUpdateMessage): checks the data,
/// applies `apply` to the channel, records `name` with the data and the status.
unsafe fn data_call(
    name: &str,
    h: LinHandle,
    id: c_uint,
    msg: *const c_void,
    dlc: c_uint,
    apply: impl FnOnce(&mut Channel, &[u8]) -> Result<(), LinStatus>,
) -> LinStatus {
    let data = match bytes(msg, dlc) {
        Ok(data) => data,
        Err(e) => return e,
    };
    let mut sim = lock();
    let result = sim.channel(h).and_then(|c| apply(c, data));
    sim.record(format_args!(
        "{name} h={h} id={id} data={} -> {}",
        hex(data),
        status(result).0
    ));
    drop(sim);
    sim_notify();
    status(result)
}

#[no_mangle]
pub unsafe extern "C" fn linWriteMessage(
    h: LinHandle,
    id: c_uint,
    msg: *const c_void,
    dlc: c_uint,
) -> LinStatus {
    data_call("linWriteMessage", h, id, msg, dlc, |c, data| {
        master_may_send(c, id)?;
        c.rx.push_back(Frame {
            id,
            data: data.to_vec(),
            flags: LIN_TX,
        });
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn linRequestMessage(h: LinHandle, id: c_uint) -> LinStatus {
    let mut sim = lock();
    let answer = sim.answer(id);
    let result = sim.channel(h).and_then(|c| {
        master_may_send(c, id)?;
        c.rx.push_back(answer);
        Ok(())
    });
    sim.record(format_args!(
        "linRequestMessage h={h} id={id} -> {}",
        status(result).0
    ));
    drop(sim);
    sim_notify();
    status(result)
}

#[no_mangle]
pub unsafe extern "C" fn linUpdateMessage(
    h: LinHandle,
    id: c_uint,
    msg: *const c_void,
    dlc: c_uint,
) -> LinStatus {
    data_call("linUpdateMessage", h, id, msg, dlc, |c, data| {
        if c.master {
            return Err(LinStatus::linERR_SLAVEONLY);
        }
        if id > 63 {
            return Err(LinStatus::linERR_PARAM);
        }
        c.updates.insert(id, data.to_vec());
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn linClearMessage(h: LinHandle, id: c_uint) -> LinStatus {
    let mut sim = lock();
    let result = sim.channel(h).map(|c| {
        c.updates.remove(&id);
    });
    sim.record(format_args!(
        "linClearMessage h={h} id={id} -> {}",
        status(result).0
    ));
    status(result)
}

#[no_mangle]
pub unsafe extern "C" fn linReadMessage(
    h: LinHandle,
    id: *mut c_uint,
    msg: *mut c_void,
    dlc: *mut c_uint,
    flags: *mut c_uint,
    msgInfo: *mut LinMessageInfo,
) -> LinStatus {
    linReadMessageWait(h, id, msg, dlc, flags, msgInfo, 0)
}

#[no_mangle]
pub unsafe extern "C" fn linReadMessageWait(
    h: LinHandle,
    id: *mut c_uint,
    msg: *mut c_void,
    dlc: *mut c_uint,
    flags: *mut c_uint,
    msgInfo: *mut LinMessageInfo,
    timeout: c_ulong,
) -> LinStatus {
    if id.is_null() || msg.is_null() || dlc.is_null() || flags.is_null() {
        return LinStatus::linERR_PARAM;
    }
    #[allow(clippy::useless_conversion)] // c_ulong is 32 bits on 32-bit targets
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout));
    let (_, changed) = sim();
    let mut sim = lock();
    loop {
        let started = sim.started;
        let channel = match sim.channel(h) {
            Ok(c) => c,
            Err(e) => return e,
        };
        if let Some(frame) = channel.rx.pop_front() {
            *id = frame.id;
            *dlc = frame.data.len() as c_uint;
            std::ptr::copy_nonoverlapping(frame.data.as_ptr(), msg.cast::<u8>(), frame.data.len());
            *flags = frame.flags;
            if !msgInfo.is_null() {
                let mut info: LinMessageInfo = std::mem::zeroed();
                info.timestamp = started.elapsed().as_millis() as c_ulong;
                info.bitrate = channel.bitrate as c_ulong;
                std::ptr::write(msgInfo, info);
            }
            return LinStatus::linOK;
        }
        let now = Instant::now();
        if now >= deadline {
            return LinStatus::linERR_NOMSG;
        }
        sim = changed
            .wait_timeout(sim, deadline - now)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
}

// ---- CANlib ------------------------------------------------------------------------------

/// An EAN as CANlib gives it: 13 digits packed two per byte (BCD), least significant first.
fn ean_bcd(ean: &str) -> [u8; 8] {
    let digits: Vec<u8> = ean
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
        .collect();
    let mut out = [0u8; 8];
    for (i, digit) in digits.iter().rev().enumerate().take(16) {
        out[i / 2] |= digit << (4 * (i % 2));
    }
    out
}

#[no_mangle]
pub extern "C" fn canInitializeLibrary() {
    lock().record(format_args!("canInitializeLibrary"));
}

#[no_mangle]
pub unsafe extern "C" fn canGetNumberOfChannels(channelCount: *mut c_int) -> canStatus {
    if channelCount.is_null() {
        return canStatus::canERR_PARAM;
    }
    *channelCount = lock().adapters.len() as c_int;
    canStatus::canOK
}

#[no_mangle]
pub unsafe extern "C" fn canGetChannelData(
    channel: c_int,
    item: c_int,
    buffer: *mut c_void,
    bufsize: usize,
) -> canStatus {
    let sim = lock();
    let Some(adapter) = sim.adapter(channel) else {
        return canStatus::canERR_NOTFOUND;
    };
    let value: Vec<u8> = match item as u32 {
        canCHANNELDATA_CARD_UPC_NO => ean_bcd(&adapter.ean).to_vec(),
        canCHANNELDATA_CARD_SERIAL_NO => adapter.serial.to_le_bytes().to_vec(),
        canCHANNELDATA_CHAN_NO_ON_CARD => 0u32.to_le_bytes().to_vec(),
        canCHANNELDATA_DEVDESCR_ASCII => b"Kvaser stand-in (vxbus tests)\0".to_vec(),
        _ => return canStatus::canERR_NOT_IMPLEMENTED,
    };
    if buffer.is_null() || bufsize < value.len() {
        return canStatus::canERR_PARAM;
    }
    std::ptr::copy_nonoverlapping(value.as_ptr(), buffer.cast::<u8>(), value.len());
    canStatus::canOK
}
