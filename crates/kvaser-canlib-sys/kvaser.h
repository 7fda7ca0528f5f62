/*
 * The parts of Kvaser's LINlib and CANlib that vxbus's kvaser-lin plugin calls, declared by
 * this project from Kvaser's published API documentation (not a copy of Kvaser's headers).
 * bindgen reads this file at build time (build.rs); the libraries themselves, liblinlib.so.1
 * and libcanlib.so.1, are loaded at run time.
 *
 * `unsigned long` is kept as the documentation spells it: 8 bytes on x86_64 and aarch64 Linux,
 * so LinMessageInfo is 136 bytes there (68 only where long is 4 bytes).
 */
#ifndef VXBUS_KVASER_H
#define VXBUS_KVASER_H

#include <stddef.h>

/* ---- LINlib ---------------------------------------------------------------------------- */

/* A handle from linOpenChannel; negative values are errors. */
typedef int LinHandle;
#define linINVALID_HANDLE (-1)

/* Status codes: 0 is success, negative values are errors. */
typedef enum {
  linOK = 0,
  linERR_NOMSG = -1,
  linERR_NOTRUNNING = -3,
  linERR_RUNNING = -4,
  linERR_MASTERONLY = -5,
  linERR_SLAVEONLY = -6,
  linERR_PARAM = -7,
  linERR_NOTFOUND = -8,
  linERR_NOMEM = -9,
  linERR_NOCHANNELS = -10,
  linERR_TIMEOUT = -11,
  linERR_NOTINITIALIZED = -12,
  linERR_NOHANDLES = -13,
  linERR_INVHANDLE = -14,
  linERR_CANERROR = -15,
  linERR_ERRRESP = -16,
  linERR_WRONGRESP = -17,
  linERR_DRIVER = -18,
  linERR_DRIVERFAILED = -19,
  linERR_NOCARD = -20,
  linERR_LICENSE = -21,
  linERR_INTERNAL = -22,
  linERR_NO_ACCESS = -23,
  linERR_VERSION = -24
} LinStatus;

/* linOpenChannel flags: the role the adapter plays on the LIN bus. */
#define LIN_MASTER 1
#define LIN_SLAVE 2

/* linSetupLIN flags. */
#define LIN_ENHANCED_CHECKSUM 1
#define LIN_VARIABLE_DLC 2

/* Flags linReadMessage/linReadMessageWait return about a frame. */
#define LIN_TX 1
#define LIN_RX 2
#define LIN_WAKEUP_FRAME 4
#define LIN_NODATA 8
#define LIN_CSUM_ERROR 16
#define LIN_PARITY_ERROR 32
#define LIN_SYNCH_ERROR 64
#define LIN_BIT_ERROR 128

/* Timing of a received frame (microseconds, except timestamp: milliseconds). */
typedef struct {
  unsigned long timestamp;
  unsigned long synchBreakLength;
  unsigned long frameLength;
  unsigned long bitrate;
  unsigned char checkSum;
  unsigned char idPar;
  unsigned short z; /* alignment */
  unsigned long synchEdgeTime[4];
  unsigned long byteTime[8];
} LinMessageInfo;

void linInitializeLibrary(void);
LinStatus linGetTransceiverData(int channel, unsigned char eanNo[8], unsigned char serNo[8], int *ttype);
LinHandle linOpenChannel(int channel, int flags);
LinStatus linClose(LinHandle h);
LinStatus linSetBitrate(LinHandle h, unsigned int bps);
LinStatus linSetupLIN(LinHandle h, unsigned int lFlags, unsigned int bps);
LinStatus linBusOn(LinHandle h);
LinStatus linBusOff(LinHandle h);
LinStatus linWriteMessage(LinHandle h, unsigned int id, const void *msg, unsigned int dlc);
LinStatus linRequestMessage(LinHandle h, unsigned int id);
LinStatus linReadMessage(LinHandle h, unsigned int *id, void *msg, unsigned int *dlc,
                         unsigned int *flags, LinMessageInfo *msgInfo);
LinStatus linReadMessageWait(LinHandle h, unsigned int *id, void *msg, unsigned int *dlc,
                             unsigned int *flags, LinMessageInfo *msgInfo, unsigned long timeout);
LinStatus linUpdateMessage(LinHandle h, unsigned int id, const void *msg, unsigned int dlc);
LinStatus linClearMessage(LinHandle h, unsigned int id);

/* ---- CANlib (finding the adapter a LIN channel belongs to) ---------------------------- */

typedef int canHandle;

typedef enum {
  canOK = 0,
  canERR_PARAM = -1,
  canERR_NOMSG = -2,
  canERR_NOTFOUND = -3,
  canERR_NOMEM = -4,
  canERR_NOCHANNELS = -5,
  canERR_TIMEOUT = -7,
  canERR_NOTINITIALIZED = -8,
  canERR_NOHANDLES = -9,
  canERR_INVHANDLE = -10,
  canERR_DRIVER = -12,
  canERR_DRIVERFAILED = -24,
  canERR_NOCARD = -26,
  canERR_INTERNAL = -30,
  canERR_NO_ACCESS = -31,
  canERR_NOT_IMPLEMENTED = -32
} canStatus;

/* canGetChannelData items. */
#define canCHANNELDATA_CHAN_NO_ON_CARD 6
#define canCHANNELDATA_CARD_SERIAL_NO 7
#define canCHANNELDATA_CARD_UPC_NO 11
#define canCHANNELDATA_DEVDESCR_ASCII 26

void canInitializeLibrary(void);
canStatus canGetNumberOfChannels(int *channelCount);
canStatus canGetChannelData(int channel, int item, void *buffer, size_t bufsize);

#endif
