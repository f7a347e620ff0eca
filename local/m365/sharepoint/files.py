"""Files in document libraries: add, check out and in, move; each a change in the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors
from .errors import SharePointError
from .model import (
    CHANGE_ADD,
    CHANGE_DELETE,
    CHANGE_MOVE_AWAY,
    CHANGE_MOVE_INTO,
    CHANGE_SYSTEM_UPDATE,
    CHANGE_UPDATE,
    Item,
    SpList,
    StoredFile,
)

if TYPE_CHECKING:
    from ..clock import Clock
    from .model import Site


class LibraryFiles:
    """The file operations of `SharePointState`, which provides the sites, the clock and the
    change log."""

    clock: Clock

    def site(self, path: str) -> Site:
        raise NotImplementedError

    def _record_change(self, site_path: str, sp_list: SpList, change_type: int, item: Item) -> None:
        raise NotImplementedError

    def library_of(self, site_path: str, server_relative_url: str) -> SpList:
        """The library whose root folder holds the URL (a folder or a file)."""
        site = self.site(site_path)
        for sp_list in site.lists.values():
            root = sp_list.root_folder.lower()
            url = server_relative_url.lower().rstrip("/")
            if sp_list.is_library and (url == root or url.startswith(root + "/")):
                return sp_list
        raise errors.file_not_found(server_relative_url)

    def find_file(self, site_path: str, server_relative_url: str) -> tuple[SpList, Item]:
        sp_list = self.library_of(site_path, server_relative_url)
        found = _entry(sp_list, server_relative_url)
        if found is None or found.file is None or found.file.is_folder:
            raise errors.file_not_found(server_relative_url)
        return sp_list, found

    def url_of_unique_id(self, site_path: str, unique_id: str) -> str:
        wanted = unique_id.lower().strip("{}")
        for sp_list in self.site(site_path).lists.values():
            for item in sp_list.items.values():
                if item.unique_id == wanted and item.file is not None:
                    return item.file.server_relative_url
        raise errors.file_not_found(unique_id)

    def find_folder(self, site_path: str, server_relative_url: str) -> tuple[SpList, Item | None]:
        """A folder's list item; None for the library's root folder, which has none."""
        sp_list = self.library_of(site_path, server_relative_url)
        if server_relative_url.rstrip("/").lower() == sp_list.root_folder.lower():
            return sp_list, None
        found = _entry(sp_list, server_relative_url)
        if found is None or found.file is None or not found.file.is_folder:
            raise errors.file_not_found(server_relative_url)
        return sp_list, found

    def folder_contents(self, site_path: str, server_relative_url: str) -> list[Item]:
        sp_list, _ = self.find_folder(site_path, server_relative_url)
        folder = server_relative_url.rstrip("/").lower()
        return [
            item
            for item in sp_list.items.values()
            if item.file is not None and not item.file.is_folder and item.file.folder.lower() == folder
        ]

    def add_folder(self, site_path: str, server_relative_url: str) -> Item | None:
        """`Folders/Add`: the folder, created in its parent; one that exists is given back (a
        library's root folder, added at the web's root, is None: it has no list item)."""
        parent, _, name = server_relative_url.rstrip("/").rpartition("/")
        if parent.lower() == self.site(site_path).path.rstrip("/").lower() or not parent:
            # Folders.Add at the web's root: SharePoint gives back a library's root folder, as a
            # client's ensure-path does first; the emulator keeps no folders outside libraries.
            library = self.library_of(site_path, server_relative_url)
            if library.root_folder.lower() != server_relative_url.rstrip("/").lower():
                raise errors.file_not_found(server_relative_url)
            return None
        sp_list, _ = self.find_folder(site_path, parent)
        existing = _entry(sp_list, server_relative_url)
        if existing is not None and existing.file is not None and existing.file.is_folder:
            return existing
        self._check_file_name(sp_list, parent, name)
        now = self.clock.now()
        folder = Item(
            id=sp_list.next_item_id,
            fields={"Title": None},
            created=now,
            modified=now,
            file=StoredFile(name=name, folder=parent, content=b"", is_folder=True),
        )
        sp_list.next_item_id += 1
        sp_list.items[folder.id] = folder
        self._record_change(site_path, sp_list, CHANGE_ADD, folder)
        return folder

    def delete_folder(self, site_path: str, server_relative_url: str) -> None:
        sp_list, folder = self.find_folder(site_path, server_relative_url)
        if folder is None:
            raise SharePointError(400, errors.INVALID_OPERATION, "The root folder cannot be deleted.")
        prefix = server_relative_url.rstrip("/").lower()
        for item in list(sp_list.items.values()):
            url = item.file.server_relative_url.lower() if item.file is not None else ""
            if url == prefix or url.startswith(prefix + "/"):
                del sp_list.items[item.id]
                self._record_change(site_path, sp_list, CHANGE_DELETE, item)

    def add_file(self, site_path: str, folder: str, name: str, content: bytes, *, overwrite: bool) -> Item:
        sp_list, _ = self.find_folder(site_path, folder)
        folder = folder.rstrip("/")
        existing = _entry(sp_list, f"{folder}/{name}")
        now = self.clock.now()
        if existing is not None and existing.file is not None and existing.file.is_folder:
            raise errors.file_exists(existing.file.server_relative_url)
        if existing is not None:
            assert existing.file is not None
            if not overwrite:
                raise errors.file_exists(existing.file.server_relative_url)
            if existing.file.checked_out_by is not None:
                raise errors.file_checked_out(existing.file.server_relative_url)
            existing.file.content = content
            existing.file.major_version += 1
            existing.modified = now
            self._record_change(site_path, sp_list, CHANGE_UPDATE, existing)
            return existing
        self._check_file_name(sp_list, folder, name)
        item = Item(
            id=sp_list.next_item_id,
            fields={"Title": None},
            created=now,
            modified=now,
            file=StoredFile(name=name, folder=folder, content=content),
        )
        sp_list.next_item_id += 1
        sp_list.items[item.id] = item
        self._record_change(site_path, sp_list, CHANGE_ADD, item)
        return item

    def check_out(self, site_path: str, server_relative_url: str, app_id: str) -> None:
        sp_list, item = self.find_file(site_path, server_relative_url)
        assert item.file is not None
        if item.file.checked_out_by is not None:
            raise errors.file_checked_out(server_relative_url)
        item.file.checked_out_by = app_id
        # Checking out changes no content and no version: SharePoint logs a system update.
        self._record_change(site_path, sp_list, CHANGE_SYSTEM_UPDATE, item)

    def check_in(self, site_path: str, server_relative_url: str) -> None:
        sp_list, item = self.find_file(site_path, server_relative_url)
        assert item.file is not None
        if item.file.checked_out_by is None:
            raise errors.file_not_checked_out(server_relative_url)
        item.file.checked_out_by = None
        item.file.major_version += 1
        item.modified = self.clock.now()
        self._record_change(site_path, sp_list, CHANGE_UPDATE, item)

    def move_file(self, site_path: str, server_relative_url: str, new_url: str, *, overwrite: bool) -> None:
        source_list, item = self.find_file(site_path, server_relative_url)
        assert item.file is not None
        folder, _, name = new_url.rstrip("/").rpartition("/")
        target_list, _ = self.find_folder(site_path, folder)
        if any(
            other.file is not None and other.file.server_relative_url.lower() == new_url.lower()
            for other in target_list.items.values()
        ):
            if not overwrite:
                raise errors.file_exists(new_url)
            target_list.items = {
                key: other
                for key, other in target_list.items.items()
                if other.file is None or other.file.server_relative_url.lower() != new_url.lower()
            }
        del source_list.items[item.id]
        self._record_change(site_path, source_list, CHANGE_MOVE_AWAY, item)
        item.file.folder, item.file.name = folder, name
        item.modified = self.clock.now()
        if target_list is not source_list:
            item.id = target_list.next_item_id
            target_list.next_item_id += 1
        target_list.items[item.id] = item
        self._record_change(site_path, target_list, CHANGE_MOVE_INTO, item)

    def _check_file_name(self, sp_list: SpList, folder: str, name: str) -> None:
        if not name or any(c in name for c in '"*:<>?/\\|') or name.startswith(" ") or ".." in name:
            raise SharePointError(400, errors.ARGUMENT, f"The file name '{name}' is not valid.")
        wanted = f"{folder}/{name}".lower()
        if any(
            i.file is not None and i.file.server_relative_url.lower() == wanted
            for i in sp_list.items.values()
        ):
            raise errors.file_exists(f"{folder}/{name}")


def _entry(sp_list: SpList, server_relative_url: str) -> Item | None:
    wanted = server_relative_url.rstrip("/").lower()
    return next(
        (
            item
            for item in sp_list.items.values()
            if item.file is not None and item.file.server_relative_url.lower() == wanted
        ),
        None,
    )
