/** The command-line terminal (role 10): `kessai wallet …` and its removable storage. */
export { directoryKeyFile, registerWalletCommands, WalletCliError, listenReconnectsMax, listenReconnectDelayMsFirst, type WalletCliErrorCode, type WalletIo } from './commands/index.ts';
export {
  assertMayEnroll,
  loadWallet,
  openStorage,
  replaceSealedCredential,
  saveWallet,
  storageFileBytesMax,
  storageFiles,
  StorageError,
  StorageMissingError,
  walletFile,
  type LoadedWallet,
  type Storage,
  type StorageErrorCode,
  type WalletFile,
} from './storage.ts';
export { buildWalletHost, type WalletHostConfig } from './host.ts';
